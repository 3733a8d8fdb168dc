import { randomBytes, randomUUID } from 'node:crypto';

export const newId = (): string => randomUUID();

/** Layer ids double as QEMU node names: a letter first, at most 31 characters. */
export const newLayerId = (): string => `l${randomBytes(10).toString('hex')}`;

// Errors the repository raises. Callers branch on the class, never on the
// message; messages name objects (keys, ids) but never key material.

/** No key slot opens with the given passphrase or key file. */
export class WrongKeyError extends Error {
  override readonly name = 'WrongKeyError';
  constructor(readonly location: string) {
    super(`no key slot of the repository at ${location} opens with this passphrase or key file`);
  }
}

/**
 * An object failed authentication: it was damaged, tampered with, or swapped
 * for another object. Its bytes are never returned.
 */
export class AuthError extends Error {
  override readonly name = 'AuthError';
  constructor(
    readonly objectKey: string,
    readonly detail: string,
  ) {
    super(`${objectKey} failed authentication: ${detail}`);
  }
}

/** A chunk a backup references is absent from the store. */
export class ChunkMissingError extends Error {
  override readonly name = 'ChunkMissingError';
  constructor(readonly chunkId: string) {
    super(`chunk ${chunkId} is missing from the repository`);
  }
}

export class RepositoryExistsError extends Error {
  override readonly name = 'RepositoryExistsError';
  constructor(readonly location: string) {
    super(`a repository already exists at ${location}`);
  }
}

/** No config object, or one this version cannot read. */
export class RepositoryFormatError extends Error {
  override readonly name = 'RepositoryFormatError';
}

export class BackupNotFoundError extends Error {
  override readonly name = 'BackupNotFoundError';
  constructor(readonly backupId: string) {
    super(`backup ${backupId} not found`);
  }
}

export class BackupExistsError extends Error {
  override readonly name = 'BackupExistsError';
  constructor(readonly backupId: string) {
    super(`backup ${backupId} already exists`);
  }
}

/** commit() found slots of the volume that were neither written, zeroed nor inherited. */
export class IncompleteBackupError extends Error {
  override readonly name = 'IncompleteBackupError';
  constructor(
    readonly backupId: string,
    readonly firstMissingOffset: number,
    readonly missingChunks: number,
  ) {
    super(`backup ${backupId} is incomplete: ${missingChunks} chunk(s) not accounted for, first at offset ${firstMissingOffset}`);
  }
}

/**
 * A garbage collection that ran while this backup was being written removed a
 * chunk the backup references. No manifest was written; take the backup again.
 */
export class ChunkVanishedError extends Error {
  override readonly name = 'ChunkVanishedError';
  constructor(
    readonly backupId: string,
    readonly chunkIds: readonly string[],
  ) {
    super(`backup ${backupId}: ${chunkIds.length} referenced chunk(s) were removed by a concurrent garbage collection; nothing was committed`);
  }
}

/** gc stopped before deleting anything it could not prove unneeded. */
export class GcAbortedError extends Error {
  override readonly name = 'GcAbortedError';
}

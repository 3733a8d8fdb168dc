// The backup repository's public surface.
export { Repository, type KeySlotInfo, type RepositoryInitOptions } from './repository.js';
export type { RepositoryOptions } from './context.js';
export { BackupWriter, type BackupMeta } from './writer.js';
export type { Extent } from './reader.js';
export type { BackupManifest, BackupStats, BackupSummary } from './manifest.js';
export type { DamagedChunk, VerifyReport } from './verify.js';
export type { GcOptions, GcReport } from './gc.js';
export { secretFromKeyFile, type RepositorySecret, type ScryptParams } from './keys.js';
export { ChunkTable } from './chunk-table.js';
export {
  AuthError,
  BackupExistsError,
  BackupNotFoundError,
  ChunkMissingError,
  ChunkVanishedError,
  GcAbortedError,
  IncompleteBackupError,
  RepositoryExistsError,
  RepositoryFormatError,
  WrongKeyError,
} from './errors.js';

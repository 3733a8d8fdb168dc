import type { Command } from 'commander';
import { registerBackupCommands } from './cmd-backups.js';
import { registerGroupCommands } from './cmd-groups.js';
import { registerInfoCommands } from './cmd-info.js';
import { registerVolumeCommands } from './cmd-volumes.js';

/**
 * Operator commands over the public API: `bulwark <resource> <verb>`, with
 * credentials from the OS_* variables of DATA_DIR/openrc.
 */
export function registerResourceCommands(program: Command): void {
  registerVolumeCommands(program);
  registerGroupCommands(program);
  registerInfoCommands(program);
  registerBackupCommands(program);
}

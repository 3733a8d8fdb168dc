import type { Command } from 'commander';

/** Operator commands over the public API (filled in by the CLI module). */
export function registerResourceCommands(_program: Command): void {}

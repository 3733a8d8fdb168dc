// `bulwark`: one program, several roles, plus an operator CLI over the API.
import { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { startRoles, writeOpenrcFiles, type RoleName } from '../roles/runtime.js';
import { registerResourceCommands } from './resources.js';
import { runDemo } from './demo.js';
import { registerPlanCommands } from './cmd-plans.js';

function serve(roles: RoleName[], description: string, program: Command, name: string): void {
  program
    .command(name)
    .description(description)
    .option('-c, --config <file>', 'JSON config file')
    .option('--data-dir <dir>', 'data directory')
    .option('--database-url <url>', 'sqlite:///path or postgres://...')
    .option('--port <port>', 'API listen port')
    .option('--host-name <name>', 'host name this service reports')
    .action(async (opts: { config?: string; dataDir?: string; databaseUrl?: string; port?: string; hostName?: string }) => {
      const config = loadConfig({
        file: opts.config,
        overrides: {
          dataDir: opts.dataDir,
          databaseUrl: opts.databaseUrl,
          host: opts.hostName,
          ...(opts.port !== undefined ? { api: { listen: { port: Number(opts.port) } } } : {}),
        },
      });
      const running = await startRoles(config, new Set(roles), name);
      running.log.info({ roles }, 'ready');
      if (running.apiUrl && roles.includes('volume')) {
        const files = writeOpenrcFiles(config, running.apiUrl);
        running.log.info({ files }, 'credentials written; source one and run `openstack volume list`');
      }
      // Draining on SIGTERM/SIGINT; QSD keeps running across a role restart only
      // when the role dies, never on a clean stop.
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        running.log.info({ signal }, 'stopping');
        running.stop({ keepDaemon: false }).then(
          () => process.exit(0),
          (err: unknown) => {
            running.log.error({ err: String(err) }, 'stop failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}

export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program.name('bulwark').description('Block storage and site-loss protection for VM volumes on QEMU');
  serve(['api', 'scheduler', 'volume', 'backup', 'compute'], 'run every role in one process on embedded defaults', program, 'all-in-one');
  serve(['api'], 'run the Keystone + Cinder API', program, 'api');
  serve(['scheduler'], 'run the scheduler', program, 'scheduler');
  serve(['volume'], 'run the volume service for this host\'s pools', program, 'volume');
  serve(['backup'], 'run a backup service (any number, on any host)', program, 'backup');
  serve(['compute'], 'run the compute service for this hypervisor host (QEMU VMs on Bulwark volumes)', program, 'compute');
  program
    .command('demo')
    .description('start all-in-one on embedded defaults and walk through volumes, snapshots, a group snapshot and clones')
    .option('--data-dir <dir>', 'data directory', '.data/demo')
    .option('--keep-running', 'leave the deployment up after the walk-through')
    .action(async (opts: { dataDir: string; keepRunning?: boolean }) => {
      await runDemo({ dataDir: opts.dataDir, keepRunning: opts.keepRunning ?? false, fresh: true });
    });
  registerResourceCommands(program);
  registerPlanCommands(program);
  await program.parseAsync(argv);
}

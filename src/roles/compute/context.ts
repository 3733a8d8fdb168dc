// What the compute role's handlers share: the service deps (store, jobs,
// config), this host's name and where instance runtime directories live.
import { join } from 'node:path';
import type { Caller, ServiceDeps } from '../../services/deps.js';
import type { Logger } from '../../util/log.js';
import { AgentSessions } from './agent-sessions.js';

export interface ComputeContext {
  readonly deps: ServiceDeps;
  readonly host: string;
  readonly instancesDir: string;
  /** Connect + resync budget for a guest agent; an agent that does not answer
   *  in time counts as missing (the plan's require_quiesce decides what then). */
  readonly agentTimeoutMs: number;
  readonly log: Logger;
  /** Agent connections held from a plan's preparation to its thaw. */
  readonly sessions: AgentSessions;
  instanceDir(id: string): string;
}

export function makeComputeContext(deps: ServiceDeps, host: string, log: Logger): ComputeContext {
  const instancesDir = deps.config.compute.instancesDir!;
  const agentTimeoutMs = 2_000;
  return {
    deps,
    host,
    instancesDir,
    agentTimeoutMs,
    log,
    sessions: new AgentSessions(agentTimeoutMs),
    instanceDir: (id) => join(instancesDir, id),
  };
}

/** The compute role acts for the instance's project with admin rights over its own attachments. */
export function serviceCaller(projectId: string): Caller {
  return { userId: 'bulwark-compute', projectId, isAdmin: true };
}

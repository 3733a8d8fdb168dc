// The QEMU VM driver used by the compute role (see each module for the why).
export { chooseAccel, type Accel, type ChooseAccelOptions } from './accel.js';
export { waitForAgent } from './agent.js';
export { armFreezeDeadline, disarmFreezeDeadline, ensureWatchdog, lastWatchdogAction, type WatchdogResult } from './freeze-watchdog.js';
export { buildQemuArgs, validateSpec, VmSpecError, type NbdDiskSource, type VmDisk, type VmSpec } from './spec.js';
export { findVm, launchVm, vmPid, VmAlreadyRunningError, VmStartError, type LaunchOptions, type VmHandle } from './vm.js';

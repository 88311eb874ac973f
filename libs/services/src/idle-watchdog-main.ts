/**
 * Entry point of a home's idle watchdog (`node --import tsx idle-watchdog-main.ts --home <dir>
 * --idle-ms <n>`), started detached by `ensureIdleWatchdog`: it stops the home's embedded services
 * once no detl command or worker has used them for the idle time.
 */
import { parseArgs } from 'node:util';
import { stopEmbeddedServices } from './embedded-services';
import { runIdleWatchdog } from './idle-shutdown';

const { values } = parseArgs({ options: { home: { type: 'string' }, 'idle-ms': { type: 'string' } } });
const home = values.home;
const idleTimeoutMs = Number(values['idle-ms']);
if (home === undefined || !Number.isFinite(idleTimeoutMs) || idleTimeoutMs < 0) {
  console.error('usage: idle-watchdog-main.ts --home <dir> --idle-ms <milliseconds>');
  process.exit(2);
}

const log = (line: string) => console.log(`${new Date().toISOString()} ${line}`);
log(`watching ${home}: services stop after ${Math.round(idleTimeoutMs / 1000)} s without a detl command or worker`);
runIdleWatchdog({ home, idleTimeoutMs, stopServices: stopEmbeddedServices, log }).then(
  () => process.exit(0),
  (error: unknown) => {
    log(`watchdog failed: ${(error as Error).stack ?? String(error)}`);
    process.exit(1);
  },
);

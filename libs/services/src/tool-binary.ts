import { accessSync, constants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The external binaries the embedded services run. */
export type ToolName = 'temporal' | 'minio';

const ENV_VARS: Record<ToolName, string> = { temporal: 'DETL_TEMPORAL_BIN', minio: 'DETL_MINIO_BIN' };

/** Raised when a service binary cannot be found; the message says how to get it. */
export class MissingBinaryError extends Error {
  override readonly name = 'MissingBinaryError';
  constructor(
    readonly tool: ToolName,
    readonly searched: string[],
  ) {
    super(
      `the ${tool} binary was not found (looked at: ${searched.join(', ')}). ` +
        `Run tools/ensure-binaries.sh to build it, or set ${ENV_VARS[tool]} to its path.`,
    );
  }
}

/** Folder `tools/ensure-binaries.sh` installs into: `$DETL_TOOLS_DIR/bin`, default `~/.cache/detl-tools/bin`. */
export function toolsBinDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.DETL_TOOLS_DIR ?? path.join(env.HOME ?? os.homedir(), '.cache', 'detl-tools');
  return path.join(base, 'bin');
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds a service binary: `DETL_TEMPORAL_BIN` / `DETL_MINIO_BIN` first, then the tools folder
 * `tools/ensure-binaries.sh` fills, then `PATH`.
 * @throws MissingBinaryError listing every place looked at. An explicit environment variable that
 * points nowhere is an error rather than a fallthrough, because silently using another binary would
 * hide the misconfiguration.
 */
export function resolveToolBinary(tool: ToolName, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[ENV_VARS[tool]];
  if (fromEnv !== undefined && fromEnv !== '') {
    if (isExecutable(fromEnv)) return path.resolve(fromEnv);
    throw new MissingBinaryError(tool, [`${ENV_VARS[tool]}=${fromEnv}`]);
  }
  const candidates = [path.join(toolsBinDir(env), tool)];
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir !== '') candidates.push(path.join(dir, tool));
  }
  const found = candidates.find(isExecutable);
  if (found !== undefined) return found;
  throw new MissingBinaryError(tool, [candidates[0] ?? toolsBinDir(env), 'PATH']);
}

/** The server binaries the tests run: found on PATH (and the sbin dirs), or a failure naming the install command. */
import { constants as fsConstants } from 'node:fs'
import { access, stat } from 'node:fs/promises'
import path from 'node:path'

const INSTALL_COMMANDS: Record<string, string> = {
  'redis-server': 'apt-get install -y redis-server',
  'redis-cli': 'apt-get install -y redis-tools',
  memcached: 'apt-get install -y memcached',
  prometheus: 'apt-get install -y prometheus',
  promtool: 'apt-get install -y prometheus',
  chromium: 'apt-get install -y chromium',
}

/** Thrown when a server binary is not installed. The message names the install command. */
export class MissingBinaryError extends Error {
  constructor(
    readonly binary: string,
    readonly installCommand: string,
    searched: string[],
  ) {
    super(
      `${binary} not found: install it with "${installCommand}" ` +
        `(or run .ci/run, which installs every server the tests need). Searched: ${searched.join(':')}`,
    )
    this.name = 'MissingBinaryError'
  }
}

/**
 * Absolute path of an executable on PATH (plus the sbin dirs, which a non-root PATH may lack);
 * throws MissingBinaryError otherwise. `searchPath` replaces that list (used by the harness's own test).
 */
export async function requireBinary(name: string, opts: { searchPath?: string } = {}): Promise<string> {
  const dirs =
    opts.searchPath !== undefined
      ? opts.searchPath.split(path.delimiter)
      : [...(process.env.PATH ?? '').split(path.delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin']
  const searched = [...new Set(dirs.filter(Boolean))]
  for (const dir of searched) {
    const candidate = path.join(dir, name)
    try {
      await access(candidate, fsConstants.X_OK)
      if ((await stat(candidate)).isFile()) return candidate
    } catch {
      // not here
    }
  }
  throw new MissingBinaryError(name, INSTALL_COMMANDS[name] ?? `apt-get install -y ${name}`, searched)
}

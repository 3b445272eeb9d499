// The real collector binary as a child process on 127.0.0.1:0, with a config
// of the caller's in a temporary directory of its own. Shared by the snippet's
// collector test and the dashboard's browser tests (tests/browser/), so both
// start the binary the same way. Node built-ins only: it is imported from
// folders with different node_modules.
import { spawn } from 'node:child_process';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const COLLECTOR_BIN =
  process.env.VITALSIGN_COLLECTOR_BIN ||
  fileURLToPath(new URL('../../target/debug/vitalsign-collector', import.meta.url));

/**
 * Writes `config` (TOML) to a fresh temporary directory, starts
 * `vitalsign-collector serve` on a free loopback port with a database there,
 * and resolves once it logs its address. `stop()` ends it (SIGTERM, then
 * SIGKILL after 5 s) and removes the directory; `log()` is everything it
 * printed, for a failing test's message.
 */
export async function startCollector(config, { name = 'vitalsign-collector-', dir: reuse } = {}) {
  try {
    await access(COLLECTOR_BIN);
  } catch {
    throw new Error(`${COLLECTOR_BIN} is missing: run \`cargo build --bin vitalsign-collector\` (test.sh does)`);
  }
  // `dir`: start on the database another collector left there (a restart);
  // the caller owns that directory and removes it.
  const dir = reuse || (await mkdtemp(join(tmpdir(), name)));
  const configPath = join(dir, 'collector.toml');
  await writeFile(configPath, config);
  const child = spawn(
    COLLECTOR_BIN,
    ['serve', '--config', configPath, '--listen', '127.0.0.1:0', '--db', join(dir, 'collector.db')],
    { cwd: dir, env: { ...process.env, NO_COLOR: '1', RUST_LOG: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    if (!reuse) await rm(dir, { recursive: true, force: true });
  };
  try {
    const base = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`collector did not start within 30 s:\n${log}`)), 30000);
      const onData = (chunk) => {
        log += chunk;
        const m = /listening on (http:\/\/[0-9.]+:\d+)/.exec(log);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`collector exited (${signal || code}) before listening:\n${log}`));
      });
    });
    return { base, dir, log: () => log, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

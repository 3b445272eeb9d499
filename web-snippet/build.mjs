// Minifies src/vitalsign.js into dist/vitalsign.min.js, the exact file the
// collector embeds and serves. `node build.mjs --check` fails when dist is stale.
import { readFile, writeFile } from 'node:fs/promises';
import { minify } from 'terser';

export async function build() {
  const source = await readFile(new URL('./src/vitalsign.js', import.meta.url), 'utf8');
  const result = await minify(source, {
    ecma: 2017,
    // booleans_as_integers: `true` is written 1 (every boolean here is only
    // tested for truth or passed to a web API that converts it), 5 B brotli.
    compress: { passes: 4, unsafe_arrows: true, pure_getters: true, booleans_as_integers: true },
    // Internal object properties are written `_name` in the source; wire keys,
    // DOM and web-API names (and `__vitalsign`) never match /^_[a-z]/.
    mangle: { properties: { regex: /^_[a-z]/ } },
    format: { comments: false, preamble: '/* vitalsign 0.1.0 | Apache-2.0 */' },
  });
  return result.code + '\n';
}

const dist = new URL('./dist/vitalsign.min.js', import.meta.url);
if (import.meta.url === `file://${process.argv[1]}`) {
  const code = await build();
  if (process.argv.includes('--check')) {
    const current = await readFile(dist, 'utf8');
    if (current !== code) {
      console.error('dist/vitalsign.min.js is stale: run `npm run build` and commit it');
      process.exit(1);
    }
  } else {
    await writeFile(dist, code);
    console.log(`wrote dist/vitalsign.min.js (${Buffer.byteLength(code)} bytes)`);
  }
}

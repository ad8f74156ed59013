// Parses a Mermaid diagram (stdin) with Mermaid's own parser, in Node with a jsdom window; exits 1
// on a parse error. Run from a directory where `npm install mermaid jsdom` was done (.ci/run).
import { JSDOM } from 'jsdom';
const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window; globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');
import { readFileSync } from 'fs';
const text = readFileSync(0, 'utf8');
try { const r = await mermaid.parse(text); console.log('ok', JSON.stringify(r)); }
catch (e) { console.error('PARSE ERROR', e.message); process.exit(1); }

#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (built by `npm install` through the `prepare` script).
import 'reflect-metadata';
const { main } = await import('../dist/cli.js');
await main(process.argv.slice(2));

// Preloaded with `node --require ./offline-guard.js index.js`: refuses every
// outbound TCP connection that is not to the loopback interface, and prints
// one "offline-guard: blocked" line per attempt, so a test can see (and
// assert on) what Backstage tried to reach. Nothing leaves the machine, not
// even a DNS query: the check runs before net resolves the host name.
'use strict';
const net = require('node:net');

const loopback = (host) =>
  host === undefined || host === null || host === '' ||
  host === 'localhost' || host === '::1' || host === '[::1]' ||
  /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(String(host));

const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function guardedConnect(...args) {
  let opts = args[0];
  if (Array.isArray(opts)) opts = opts[0]; // internal normalized form
  let host;
  let isPath = false;
  if (opts !== null && typeof opts === 'object') {
    host = opts.host;
    isPath = typeof opts.path === 'string';
  } else if (typeof opts === 'string' && Number.isNaN(Number(opts))) {
    isPath = true; // unix socket path
  } else {
    host = args[1];
    if (typeof host === 'function') host = undefined;
  }
  if (!isPath && !loopback(host)) {
    process.stderr.write(`offline-guard: blocked outbound connection to ${host}\n`);
    const err = new Error(`offline-guard: outbound connection to ${host} refused (test runs offline)`);
    err.code = 'ECONNREFUSED';
    process.nextTick(() => this.destroy(err));
    return this;
  }
  return connect.apply(this, args);
};

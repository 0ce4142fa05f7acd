// Preloaded with `node --require` so Portkey's gateway listens on 127.0.0.1 only
// (it has no host option and would otherwise bind every interface).
'use strict';
const net = require('net');

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
    if (typeof args[1] === 'string') {
      args[1] = '127.0.0.1';
    } else {
      args.splice(1, 0, '127.0.0.1');
    }
  } else if (args[0] !== null && typeof args[0] === 'object' && !Array.isArray(args[0])) {
    if (args[0].path === undefined) {
      args[0] = { ...args[0], host: '127.0.0.1' };
    }
  }
  return listen.apply(this, args);
};

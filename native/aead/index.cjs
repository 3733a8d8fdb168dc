'use strict';
// The compiled binding; require() throws if it was not built (the caller falls back to node:crypto).
module.exports = require('./build/Release/aead.node');

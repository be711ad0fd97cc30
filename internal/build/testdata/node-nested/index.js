// debug requires ms: this checks that a dependency's own dependencies resolve
// through the node_modules symlink.
const debug = require('debug');
console.log('namespace=' + debug('pier').namespace + ' ms=' + require('ms')(60000));

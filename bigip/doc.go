// Package bigip renders what BIG-IP needs to trust only requests backgate
// signed: the edge-token iRule, the data groups it reads (signing keys and
// routes to pools), and an AS3 fragment of the same. Package bigip/icontrol
// pushes them to a device through iControl REST.
package bigip

"""Where the code runs and how it talks: devices and strategies (`distribute`,
`local_cluster`), atomic file writes (`files`), pictures (`images`) and the binaries'
console (`console`). Knows nothing of GANs."""

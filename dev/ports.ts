// Ports `npm start` uses for what it starts itself (tests pick free ports instead). Fixed, so
// the commands it prints keep working across restarts.
export const DEFAULT_PORTS = {
  functions: 7071,
  entra: 7081,
  keyVault: 7082,
  graph: 7083,
  azuriteBlob: 10000,
  azuriteQueue: 10001,
  azuriteTable: 10002,
} as const;

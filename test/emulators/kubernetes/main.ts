/**
 * Runs the emulator for humans: `npx node test/emulators/kubernetes/main.ts [kubeconfig-path]`, then
 * `kubectl --kubeconfig <path> get deployments -A`. Seeds api and web in staging and api in production.
 */
import { resolve } from "node:path";
import { startKubeEmulator } from "./server.ts";

const path = resolve(process.argv[2] ?? "kubeconfig.emulator.yaml");
const emulator = await startKubeEmulator({
  port: Number(process.env.PORT ?? 0),
  stepMs: 1000,
  deployments: [
    { namespace: "staging", name: "api", image: "ghcr.io/acme/api:v1" },
    { namespace: "staging", name: "web", image: "ghcr.io/acme/web:v1", replicas: 3 },
    { namespace: "production", name: "api", image: "ghcr.io/acme/api:v1", replicas: 6 },
  ],
});
await emulator.writeKubeconfig(path);
console.log(`Kubernetes emulator listening on ${emulator.url}`);
console.log(`kubeconfig written to ${path}; try: kubectl --kubeconfig ${path} get deployments -A`);
const stop = () => {
  void emulator.close().then(() => process.exit(0));
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);

/**
 * Entry point of a host agent process: serves the controller's RPC on stdin/stdout until stdin
 * ends, then stops its VMs and exits. Nothing else may write to stdout (logs go to stderr).
 */

import { createJsonLogger, loadGuestImage, reapNow } from "@vpc/controller";
import { RpcPeer } from "../rpc.js";
import { HostAgent } from "./host-agent.js";

export async function runHostAgent(): Promise<void> {
  const level = process.env.VPC_LOG;
  const logger = createJsonLogger({
    stream: process.stderr,
    level: level === "debug" || level === "warn" || level === "error" ? level : "info",
  });
  const agent = new HostAgent(logger);
  let shuttingDown = false;
  const peer = new RpcPeer(process.stdin, process.stdout, {
    idPrefix: "a#",
    logger,
    handler: async (method, params) => {
      if (method === "exit") {
        // A host failure as the controller's tests need it: the agent dies at once, without
        // stopping anything (its VMs were killed before). The store lock dies with the process.
        setTimeout(() => process.exit(137), 20);
        return null;
      }
      const r = await agent.handle(method, params);
      if (method === "shutdown") shuttingDown = true;
      return r;
    },
  });
  const reason = await peer.closed;
  logger.log(shuttingDown ? "info" : "warn", "agent.exit", { reason: reason.message });
  // The controller is gone (or asked us to stop): nothing may outlive the agent.
  await agent.shutdown().catch(() => undefined);
  reapNow();
  process.exit(0);
}

/**
 * The guest image directory as the agent on this host finds it (`dir`, else the installation's
 * default): what a testbed checks on an ssh host before it uses the agent there.
 */
export async function agentGuestImageDir(dir?: string): Promise<string> {
  return (await loadGuestImage(dir)).dir;
}

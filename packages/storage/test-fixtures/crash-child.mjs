// Child of crash.int.test.ts: writes and commits epochs against the built package until killed.
// Prints "ready" once the store is open, "begin E" before writing epoch E, "committed E" after its
// global commit resolved, and "retained E" after retention.
import { CheckpointStore } from "../dist/index.js";
import { channelLogOf, deviceStateOf, epochDelta } from "./workload.mjs";

const [dir, seedArg, pagesArg] = process.argv.slice(2);
const seed = Number(seedArg);
const ramPages = Number(pagesArg);
const pageSize = 4096;
const vms = ["vm-a", "vm-b"];
const say = (line) => process.stdout.write(`${line}\n`);

const store = await CheckpointStore.open(dir, { create: true, compression: "lz4", pagesPerBlock: 8 });
say("ready");
let epoch = ((await store.listEpochs()).at(-1) ?? -1) + 1;
for (;;) {
  say(`begin ${epoch}`);
  for (const vmId of vms) {
    const full = epoch === 0;
    const w = await store.beginEpoch(vmId, epoch, { guestRamBytes: ramPages * pageSize, full });
    const d = epochDelta(seed, vmId, epoch, ramPages, pageSize, full);
    const half = Math.floor(d.numbers.length / 2);
    await w.writePages(d.numbers.subarray(0, half), d.data.subarray(0, half * pageSize));
    await w.writePages(d.numbers.subarray(half), d.data.subarray(half * pageSize));
    w.setDeviceState(deviceStateOf(vmId, epoch));
    w.setChannelLog(channelLogOf(vmId, epoch));
    await w.commit();
  }
  await store.commitGlobal(epoch, vms);
  say(`committed ${epoch}`);
  if (epoch % 4 === 3) {
    await store.retain({ keepLast: 3 });
    say(`retained ${epoch}`);
  }
  epoch++;
}

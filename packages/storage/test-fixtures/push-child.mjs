// Child of remote.int.test.ts: pushes one committed epoch of a local store to an S3 store, against
// the built package, and prints "object KEY" after each object it stored, "committed E" at the end.
// The test SIGKILLs it part way. Args: LOCAL_DIR EPOCH LOCATION_JSON
import { CheckpointStore, S3Store } from "../dist/index.js";

const [dir, epochArg, locationJson] = process.argv.slice(2);
const epoch = Number(epochArg);
const say = (line) => process.stdout.write(`${line}\n`);
const local = await CheckpointStore.open(dir, { readOnly: true });
const remote = await S3Store.open(JSON.parse(locationJson));
await remote.push(local, epoch, { afterObject: (key) => say(`object ${key}`) });
say(`committed ${epoch}`);
await local.close();

export {
  PageSetError,
  type PageSetErrorCode,
  type PageSetErrorOptions,
  TraceFormatError,
  type TraceFormatErrorOptions,
} from "./errors.js";
export { type FromBytesOptions, type PageRange, PageSet } from "./page-set.js";
export {
  type DecodedTraceHeader,
  type DecodedTraceItem,
  type DecoderOptions,
  type DirtyTrace,
  DirtyTraceDecoder,
  type DirtyTraceHeader,
  type DirtyTraceRecord,
  decodeDirtyTrace,
  encodeDirtyTrace,
  encodeTraceHeader,
  encodeTraceRecord,
  type FirstWriteOrder,
  RECORD_MAGIC,
  TRACE_MAGIC,
  TRACE_VERSION,
  type TrackingMode,
  type WriteClass,
} from "./trace-codec.js";
export {
  type CreateTraceOptions,
  DirtyTraceWriter,
  iterateDirtyTrace,
  type ReadTraceOptions,
  readDirtyTrace,
  type TraceStreamItem,
} from "./trace-io.js";

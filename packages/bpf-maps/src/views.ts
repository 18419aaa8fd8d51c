import { BpfError } from '@datapath/libbpf';
import { type Codec, structLayout } from './codec.js';
import { FAST_I32, FAST_I64, FAST_U8, FAST_U16, FAST_U32, FAST_U64, fastKind } from './fast.js';

/**
 * One record of a {@link RecordBatch}, read in place: the struct's fields as read-only properties that
 * decode on access from the batch's buffer, so no object is made per record. The batch has one view,
 * moved from record to record: it is valid until the iterator's next step, and shows the record the
 * batch last moved it to. Keep a record with its `toObject()`.
 */
export type RecordView<T> = Readonly<T> & {
  /** The record decoded into a new plain object (what `batches()` yields), yours to keep. */
  toObject(): T;
};

/**
 * One step of {@link EventReader.views}: the records read since the last step, read in place (a ring
 * buffer's shared memory; a perf buffer's records copied into a buffer the iterator reuses), exposed
 * through one moving {@link RecordView}. Valid until the
 * iterator's next step (the next `for await` turn); {@link RecordBatch.toArray} or
 * a view's `toObject()` to keep records longer.
 */
export interface RecordBatch<T> extends Iterable<RecordView<T>> {
  /** Records in the batch (at least 1). */
  readonly length: number;
  /**
   * Moves the batch's view to record `index` and returns it (the same object every call).
   *
   * @throws {@link BpfError} `InvalidArgument` for an index outside the batch, `BadFd` once the
   * iterator has moved on (the batch's buffer holds other records then).
   */
  at(index: number): RecordView<T>;
  /** Every record decoded into a new object, in order (what `batches()` would have yielded). */
  toArray(): T[];
}

/** @internal The reader-side buffer of a {@link RecordBatch}: record bytes and where each record starts. */
export class RecordBuffer {
  bytes: Uint8Array;
  data: DataView;
  offsets: Int32Array;
  /** Records in the buffer. */
  length = 0;
  /** Bytes of `bytes` in use. */
  used = 0;

  constructor(bytes: number, records: number) {
    this.bytes = new Uint8Array(bytes);
    this.data = new DataView(this.bytes.buffer);
    this.offsets = new Int32Array(records);
  }

  /** Makes room for `bytes` bytes and `records` offsets, keeping what is there. */
  reserve(bytes: number, records: number): void {
    if (bytes > this.bytes.length) {
      const b = new Uint8Array(Math.max(bytes, this.bytes.length * 2));
      b.set(this.bytes);
      this.bytes = b;
      this.data = new DataView(b.buffer);
    }
    if (records > this.offsets.length) {
      const o = new Int32Array(Math.max(records, this.offsets.length * 2));
      o.set(this.offsets);
      this.offsets = o;
    }
  }
}

interface ViewProto {
  /** The batch's buffer's DataView (replaced when the buffer grows). */
  d: DataView;
  /** The record's offset in it. */
  o: number;
}
type ViewClass = new () => ViewProto;

const READ: Record<number, (at: string) => string> = {
  [FAST_U8]: (at) => `this.d.getUint8(${at})`,
  [FAST_U16]: (at) => `this.d.getUint16(${at}, true)`,
  [FAST_U32]: (at) => `this.d.getUint32(${at}, true)`,
  [FAST_I32]: (at) => `this.d.getInt32(${at}, true)`,
  [FAST_U64]: (at) => `this.d.getBigUint64(${at}, true)`,
  [FAST_I64]: (at) => `this.d.getBigInt64(${at}, true)`,
};

/** What a detached view reads (every field access throws a RangeError). */
const EMPTY = new DataView(new ArrayBuffer(0));

const viewClasses = new WeakMap<object, ViewClass>();

/**
 * The flyweight class of a struct codec: a getter per field (built-in scalars read inline, other fields
 * through their codec), `toObject()` through the codec's own decoder. Made once per codec, with
 * `new Function` (only offsets and JSON-quoted names go into its source) or, where code generation is
 * disabled, with `Object.defineProperty`.
 */
function viewClass<T>(codec: Codec<T>, op: string): ViewClass {
  const known = viewClasses.get(codec);
  if (known !== undefined) return known;
  const layout = structLayout(codec);
  if (layout === undefined)
    throw new BpfError(
      'InvalidArgument',
      `${op}: the codec must be a struct() codec (its fields become the view's)`,
      {
        op,
      },
    );
  const live = layout.filter((f) => !f.pad);
  for (const f of live)
    if (f.name === 'toObject' || f.name === 'd' || f.name === 'o')
      throw new BpfError(
        'InvalidArgument',
        `${op}: a struct field named ${f.name} would hide the view's own`,
        { op },
      );
  const codecs = live.map((f) => f.codec);
  let cls: ViewClass;
  try {
    const getters = live.map((f, i) => {
      const at = `this.o + ${f.offset}`;
      const read = READ[fastKind(f.codec)];
      return `get ${JSON.stringify(f.name)}() { return ${read === undefined ? `c[${i}].decode(this.d, ${at})` : read(at)}; }`;
    });
    cls = new Function(
      'c',
      'decode',
      `return class RecordView { constructor() { this.d = undefined; this.o = 0; } ${getters.join(' ')} toObject() { return decode(this.d, this.o); } };`,
    )(codecs, codec.decode) as ViewClass;
  } catch {
    class Fallback {
      d = undefined as unknown as DataView;
      o = 0;
      toObject(): T {
        return codec.decode(this.d, this.o);
      }
    }
    for (const f of live)
      Object.defineProperty(Fallback.prototype, f.name, {
        get(this: ViewProto) {
          return f.codec.decode(this.d, this.o + f.offset);
        },
        enumerable: true,
      });
    cls = Fallback as unknown as ViewClass;
  }
  viewClasses.set(codec, cls);
  return cls;
}

/** Checks a codec can back record views (before any system call). */
export function checkViewCodec<T>(codec: Codec<T>, op: string): void {
  viewClass(codec, op);
}

/** @internal What the batches of one {@link EventReader.views} iterator share: buffer, view, generation. */
export class ViewState<T> {
  readonly buf: RecordBuffer;
  readonly view: ViewProto;
  readonly decode: (d: DataView, o: number) => T;
  readonly label: string;
  /** Bumped each time the iterator moves on (the buffer is refilled). */
  gen = 0;

  constructor(codec: Codec<T>, label: string, op: string, bytes: number, records: number) {
    this.view = new (viewClass(codec, op))();
    this.buf = new RecordBuffer(bytes, records);
    this.decode = codec.decode;
    this.label = label;
  }

  /** The iterator ended: the view reads nothing any more (the memory it pointed into may be unmapped). */
  detach(): void {
    this.view.d = EMPTY;
    this.view.o = 0;
  }

  /** The iterator moved on: the batch handed out last is gone. */
  retire(): void {
    this.gen++;
    this.buf.length = 0;
    this.buf.used = 0;
  }

  /** The batch of what the buffer holds now. */
  batch(): ViewBatch<T> {
    return new ViewBatch(this, this.gen);
  }
}

/** @internal One step's {@link RecordBatch}; refuses access once its iterator has moved on. */
export class ViewBatch<T> implements RecordBatch<T> {
  readonly #s: ViewState<T>;
  readonly #gen: number;
  readonly length: number;

  constructor(s: ViewState<T>, gen: number) {
    this.#s = s;
    this.#gen = gen;
    this.length = s.buf.length;
  }

  #check(op: string): RecordBuffer {
    if (this.#gen !== this.#s.gen)
      throw new BpfError(
        'BadFd',
        `${op}: this ${this.#s.label} batch is gone (the iterator has moved on); keep records with toObject() or toArray()`,
        { op, target: this.#s.label },
      );
    return this.#s.buf;
  }

  at(index: number): RecordView<T> {
    const buf = this.#check('at');
    if (!Number.isInteger(index) || index < 0 || index >= this.length)
      throw new BpfError(
        'InvalidArgument',
        `at: index ${index} is outside the batch (0..${this.length - 1})`,
        {
          op: 'at',
          target: this.#s.label,
        },
      );
    const v = this.#s.view;
    v.d = buf.data;
    v.o = buf.offsets[index]!;
    return v as unknown as RecordView<T>;
  }

  toArray(): T[] {
    const buf = this.#check('toArray');
    const decode = this.#s.decode;
    const out = new Array<T>(this.length);
    for (let i = 0; i < this.length; i++) out[i] = decode(buf.data, buf.offsets[i]!);
    return out;
  }

  [Symbol.iterator](): Iterator<RecordView<T>> {
    const buf = this.#check('iterate');
    const s = this.#s;
    const view = s.view;
    const gen = this.#gen;
    const offsets = buf.offsets;
    const n = this.length;
    let i = 0;
    view.d = buf.data;
    // One result object, reused: `for…of` reads it before asking for the next.
    const step = { value: view as unknown as RecordView<T>, done: false };
    const end = { value: undefined as unknown as RecordView<T>, done: true };
    return {
      next: () => {
        if (i >= n) return end;
        if (gen !== s.gen) this.#check('iterate');
        view.o = offsets[i++]!;
        return step;
      },
    };
  }
}

// bpf(2) for @datapath/libbpf as a V8 function, the one hot call of the package (a map lookup or update
// is one bpf(2) call). koffi reaches the same syscall with more overhead per call (its N-API entry, argument
// conversion and stack switch); here a call is V8's API callback and syscall(). Built per Node ABI by
// build.mjs; when it is absent or cannot load, sys/libc.ts falls back to koffi, which stays the FFI for
// everything else.
//
// bpf(op, addr) -> the syscall's result, or -errno. op = cmd | size << 8; addr is the address of the
// attr, which only ever comes from memory sys/libc.ts allocated (no pointer is taken from users).
#include <errno.h>
#include <node.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace {

void Bpf(const v8::FunctionCallbackInfo<v8::Value>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  if (info.Length() != 2 || !info[0]->IsInt32() || !info[1]->IsNumber()) {
    isolate->ThrowException(v8::Exception::TypeError(
        v8::String::NewFromUtf8Literal(isolate, "bpf(op: int32, addr: number) expected")));
    return;
  }
  const int32_t op = info[0].As<v8::Int32>()->Value();
  const double addr = info[1].As<v8::Number>()->Value();
  if (op < 0 || addr <= 0 || addr >= 9007199254740992.0) {
    isolate->ThrowException(v8::Exception::RangeError(
        v8::String::NewFromUtf8Literal(isolate, "bpf: op or addr out of range")));
    return;
  }
  const long r = syscall(__NR_bpf, static_cast<long>(op & 0xff), static_cast<unsigned long>(addr),
                         static_cast<unsigned long>(op >> 8));
  info.GetReturnValue().Set(static_cast<int32_t>(r < 0 ? -errno : r));
}

}  // namespace

// native/poll.cc: fd readiness through the event loop (the ring and perf buffer readers).
void InitPoll(v8::Local<v8::Object> exports, v8::Local<v8::Context> context);
// native/work.cc: bpf(2) on libuv's threadpool (the async forms of the calls that wait in the kernel).
void InitWork(v8::Local<v8::Object> exports, v8::Local<v8::Context> context);

NODE_MODULE_INIT(/* exports, module, context */) {
  v8::Isolate* isolate = context->GetIsolate();
  v8::Local<v8::FunctionTemplate> bpf =
      v8::FunctionTemplate::New(isolate, Bpf, v8::Local<v8::Value>(), v8::Local<v8::Signature>(), 2,
                                v8::ConstructorBehavior::kThrow, v8::SideEffectType::kHasSideEffect);
  exports.As<v8::Object>()
      ->Set(context, v8::String::NewFromUtf8Literal(isolate, "bpf"), bpf->GetFunction(context).ToLocalChecked())
      .Check();
  InitPoll(exports.As<v8::Object>(), context);
  InitWork(exports.As<v8::Object>(), context);
}

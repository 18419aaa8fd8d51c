// bpf(2) on libuv's threadpool, for the calls that wait in the kernel (BPF_LINK_CREATE for tcx waits for
// an RCU grace period, a program load runs the verifier, a map batch or walk copies many entries): the
// event loop goes on while a pool thread waits.
//
// bpfAsync(op, addr, nsFd, callback) -> 0, or -errno when the work could not be queued. op and addr as
//   for bpf() in bpf.cc; the attr memory at addr must stay alive and untouched until callback(result)
//   runs on the event loop thread with the syscall's result or -errno. With nsFd >= 0 (an open network
//   namespace), the pool thread enters that namespace for the call (an ifindex in the attr is looked up
//   in the calling thread's namespace) and returns to its own before it takes other work; a thread that
//   could not return aborts the process rather than run later work in the wrong namespace.
#include <errno.h>
#include <fcntl.h>
#include <node.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

namespace {

struct Work {
  uv_work_t req;
  v8::Isolate* isolate;
  v8::Global<v8::Context> context;
  v8::Global<v8::Function> callback;
  int32_t op;
  int32_t ns_fd;
  unsigned long addr;
  long result;
};

void Execute(uv_work_t* req) {
  Work* w = static_cast<Work*>(req->data);
  int self = -1;
  if (w->ns_fd >= 0) {
    self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0) {
      w->result = -errno;
      return;
    }
    if (setns(w->ns_fd, CLONE_NEWNET) != 0) {
      w->result = -errno;
      close(self);
      return;
    }
  }
  const long r = syscall(__NR_bpf, static_cast<long>(w->op & 0xff), w->addr, static_cast<unsigned long>(w->op >> 8));
  w->result = r < 0 ? -errno : r;
  if (self >= 0) {
    if (setns(self, CLONE_NEWNET) != 0) {
      fprintf(stderr, "@datapath/libbpf: a threadpool thread could not return to its network namespace\n");
      abort();
    }
    close(self);
  }
}

void After(uv_work_t* req, int status) {
  Work* w = static_cast<Work*>(req->data);
  v8::Isolate* isolate = w->isolate;
  {
    v8::HandleScope scope(isolate);
    v8::Local<v8::Context> context = w->context.Get(isolate);
    v8::Context::Scope context_scope(context);
    const int32_t result = status == UV_ECANCELED ? -ECANCELED : static_cast<int32_t>(w->result);
    v8::Local<v8::Value> argv[1] = {v8::Integer::New(isolate, result)};
    // MakeCallback drains microtasks afterwards, so the promise the callback settles resolves now.
    (void)node::MakeCallback(isolate, context->Global(), w->callback.Get(isolate), 1, argv, {0, 0});
  }
  w->callback.Reset();
  w->context.Reset();
  delete w;
}

void BpfAsync(const v8::FunctionCallbackInfo<v8::Value>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  if (info.Length() != 4 || !info[0]->IsInt32() || !info[1]->IsNumber() || !info[2]->IsInt32() ||
      !info[3]->IsFunction()) {
    isolate->ThrowException(v8::Exception::TypeError(
        v8::String::NewFromUtf8Literal(isolate, "bpfAsync(op: int32, addr: number, nsFd: int32, callback) expected")));
    return;
  }
  const int32_t op = info[0].As<v8::Int32>()->Value();
  const double addr = info[1].As<v8::Number>()->Value();
  if (op < 0 || addr <= 0 || addr >= 9007199254740992.0) {
    isolate->ThrowException(
        v8::Exception::RangeError(v8::String::NewFromUtf8Literal(isolate, "bpfAsync: op or addr out of range")));
    return;
  }
  uv_loop_t* loop = node::GetCurrentEventLoop(isolate);
  if (loop == nullptr) {
    info.GetReturnValue().Set(-ENOSYS);
    return;
  }
  Work* w = new Work();
  w->req.data = w;
  w->isolate = isolate;
  w->context.Reset(isolate, isolate->GetCurrentContext());
  w->callback.Reset(isolate, info[3].As<v8::Function>());
  w->ns_fd = info[2].As<v8::Int32>()->Value();
  w->op = op;
  w->addr = static_cast<unsigned long>(addr);
  const int r = uv_queue_work(loop, &w->req, Execute, After);
  if (r != 0) {
    w->callback.Reset();
    w->context.Reset();
    delete w;
  }
  info.GetReturnValue().Set(r);
}

}  // namespace

// Called from the module initialiser in bpf.cc.
void InitWork(v8::Local<v8::Object> exports, v8::Local<v8::Context> context) {
  v8::Isolate* isolate = context->GetIsolate();
  v8::Local<v8::FunctionTemplate> t =
      v8::FunctionTemplate::New(isolate, BpfAsync, v8::Local<v8::Value>(), v8::Local<v8::Signature>(), 4,
                                v8::ConstructorBehavior::kThrow, v8::SideEffectType::kHasSideEffect);
  exports
      ->Set(context, v8::String::NewFromUtf8Literal(isolate, "bpfAsync"), t->GetFunction(context).ToLocalChecked())
      .Check();
}

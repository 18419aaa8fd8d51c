// Readiness of a file descriptor, delivered by Node's own event loop: a libuv poll handle (uv_poll_t,
// epoll underneath) per watched fd. This is what drives the ring buffer and perf buffer readers of
// @datapath/bpf-maps: the kernel marks a BPF ring buffer or perf event fd readable when records are
// waiting, libuv notices it in the same epoll_wait that serves sockets and timers, and the JS callback
// drains the ring. Nothing blocks and nothing spins: an idle reader costs no CPU.
//
// pollOpen(fd, callback) -> id (> 0) or -errno. The handle is created stopped. callback(status, events)
//   runs on the event loop thread whenever the fd is readable while the handle is started; status is 0
//   or a negative libuv error. The callback must not throw (the TS layer catches everything).
// pollStart(id) -> 0 or -errno: watch for readability (level-triggered: a fd that stays readable fires
//   again on the next loop iteration, so the caller stops the handle while it is not draining).
// pollStop(id) -> 0: stop watching (the handle stays open and can be started again).
// pollClose(id) -> 0: stop and release the handle; unknown ids are ignored. The fd itself is not closed.
// pollRef(id, ref) -> 0: whether an active handle keeps the process alive (default: it does).
//
// Handles are per thread (each Node environment has its own loop); ids are never reused.
#include <errno.h>
#include <node.h>
#include <uv.h>

#include <cstdint>
#include <unordered_map>

namespace {

struct Poll {
  uv_poll_t handle;
  v8::Isolate* isolate;
  v8::Global<v8::Context> context;
  v8::Global<v8::Function> callback;
  int32_t id;
};

thread_local std::unordered_map<int32_t, Poll*> polls;
thread_local int32_t next_id = 1;

void Throw(v8::Isolate* isolate, const char* message) {
  isolate->ThrowException(
      v8::Exception::TypeError(v8::String::NewFromUtf8(isolate, message).ToLocalChecked()));
}

Poll* Find(const v8::FunctionCallbackInfo<v8::Value>& info) {
  if (info.Length() < 1 || !info[0]->IsInt32()) {
    Throw(info.GetIsolate(), "poll: id (int32) expected");
    return nullptr;
  }
  auto it = polls.find(info[0].As<v8::Int32>()->Value());
  return it == polls.end() ? nullptr : it->second;
}

void OnReadable(uv_poll_t* handle, int status, int events) {
  Poll* p = reinterpret_cast<Poll*>(handle->data);
  v8::Isolate* isolate = p->isolate;
  v8::HandleScope scope(isolate);
  v8::Local<v8::Context> context = p->context.Get(isolate);
  v8::Context::Scope context_scope(context);
  v8::Local<v8::Value> argv[2] = {v8::Integer::New(isolate, status), v8::Integer::New(isolate, events)};
  // MakeCallback runs the microtask queue and process.nextTick callbacks afterwards, so promises the
  // callback resolves (an async iterator's next()) settle before the loop goes back to epoll_wait.
  (void)node::MakeCallback(isolate, context->Global(), p->callback.Get(isolate), 2, argv, {0, 0});
}

void OnClosed(uv_handle_t* handle) {
  Poll* p = reinterpret_cast<Poll*>(handle->data);
  p->callback.Reset();
  p->context.Reset();
  delete p;
}

void Release(Poll* p) {
  polls.erase(p->id);
  uv_poll_stop(&p->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&p->handle), OnClosed);
}

void PollOpen(const v8::FunctionCallbackInfo<v8::Value>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  if (info.Length() != 2 || !info[0]->IsInt32() || !info[1]->IsFunction()) {
    Throw(isolate, "pollOpen(fd: int32, callback: function) expected");
    return;
  }
  const int fd = info[0].As<v8::Int32>()->Value();
  if (fd < 0) {
    info.GetReturnValue().Set(-EBADF);
    return;
  }
  uv_loop_t* loop = node::GetCurrentEventLoop(isolate);
  if (loop == nullptr) {
    info.GetReturnValue().Set(-ENOSYS);
    return;
  }
  Poll* p = new Poll();
  const int r = uv_poll_init(loop, &p->handle, fd);
  if (r != 0) {
    delete p;
    info.GetReturnValue().Set(r);  // libuv errors are negative errno values on Linux
    return;
  }
  p->handle.data = p;
  p->isolate = isolate;
  p->context.Reset(isolate, isolate->GetCurrentContext());
  p->callback.Reset(isolate, info[1].As<v8::Function>());
  p->id = next_id++;
  polls.emplace(p->id, p);
  info.GetReturnValue().Set(p->id);
}

void PollStart(const v8::FunctionCallbackInfo<v8::Value>& info) {
  Poll* p = Find(info);
  if (p == nullptr) {
    if (!info.GetIsolate()->IsExecutionTerminating()) info.GetReturnValue().Set(-EBADF);
    return;
  }
  info.GetReturnValue().Set(uv_poll_start(&p->handle, UV_READABLE, OnReadable));
}

void PollStop(const v8::FunctionCallbackInfo<v8::Value>& info) {
  Poll* p = Find(info);
  if (p != nullptr) uv_poll_stop(&p->handle);
  info.GetReturnValue().Set(0);
}

void PollClose(const v8::FunctionCallbackInfo<v8::Value>& info) {
  Poll* p = Find(info);
  if (p != nullptr) Release(p);
  info.GetReturnValue().Set(0);
}

void PollRef(const v8::FunctionCallbackInfo<v8::Value>& info) {
  Poll* p = Find(info);
  if (p != nullptr) {
    if (info.Length() > 1 && info[1]->IsFalse())
      uv_unref(reinterpret_cast<uv_handle_t*>(&p->handle));
    else
      uv_ref(reinterpret_cast<uv_handle_t*>(&p->handle));
  }
  info.GetReturnValue().Set(0);
}

// Closes what an environment left open when it goes away (a worker thread ending with a reader open).
void Cleanup(void*) {
  while (!polls.empty()) Release(polls.begin()->second);
}

void Export(v8::Local<v8::Object> exports, v8::Local<v8::Context> context, const char* name,
            v8::FunctionCallback fn, int length) {
  v8::Isolate* isolate = context->GetIsolate();
  v8::Local<v8::FunctionTemplate> t =
      v8::FunctionTemplate::New(isolate, fn, v8::Local<v8::Value>(), v8::Local<v8::Signature>(), length,
                                v8::ConstructorBehavior::kThrow, v8::SideEffectType::kHasSideEffect);
  exports
      ->Set(context, v8::String::NewFromUtf8(isolate, name).ToLocalChecked(),
            t->GetFunction(context).ToLocalChecked())
      .Check();
}

}  // namespace

// Called from the module initialiser in bpf.cc.
void InitPoll(v8::Local<v8::Object> exports, v8::Local<v8::Context> context) {
  Export(exports, context, "pollOpen", PollOpen, 2);
  Export(exports, context, "pollStart", PollStart, 1);
  Export(exports, context, "pollStop", PollStop, 1);
  Export(exports, context, "pollClose", PollClose, 1);
  Export(exports, context, "pollRef", PollRef, 2);
  node::AddEnvironmentCleanupHook(context->GetIsolate(), Cleanup, nullptr);
}

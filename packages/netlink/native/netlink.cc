// The native part of @datapath/netlink: the two things Node cannot do without blocking its event loop
// or moving its main thread between network namespaces.
//
// socketIn(nsFd, domain, type, protocol) -> fd (>= 0) or -errno
//   Creates a socket inside the network namespace `nsFd` names (or in the caller's, for nsFd < 0). A
//   short-lived pthread enters the namespace with setns(2), calls socket(2) and ends; a socket keeps the
//   namespace it was created in for its whole life, so the fd can then be used (bound, connected, handed
//   to libuv) from the main thread. The main thread's own namespace never changes.
//
// openIn(nsFd, path, flags) -> fd or -errno
//   open(2) of `path` from a thread inside the namespace (what /proc/sys/net/* shows depends on the
//   namespace of the opener).
//
// socketInAsync(nsFd, domain, type, protocol, callback) / openInAsync(nsFd, path, flags, callback)
//   The same on libuv's threadpool: the pool thread starts the short-lived thread and waits for it (entering
//   a namespace can take milliseconds on a loaded machine), callback(result) runs on the event loop.
//
// exchange(fd, request, seq, callback) -> undefined
//   One netlink request and its whole answer, on libuv's threadpool: sendto(2) to the kernel (where
//   rtnetlink does its work, RCU barriers included, inside the sender's system call), then recv(2) of
//   datagrams until one carries NLMSG_ERROR or NLMSG_DONE for `seq`. callback(errno, datagrams) runs on
//   the event loop with errno 0 and an array of Buffers, or a positive errno (EAGAIN: the socket's
//   receive timeout expired; EMSGSIZE: a datagram was larger than 1 MiB). One exchange at a time per socket (the TypeScript side queues them).
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <node_api.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace {

#define CHECK_NAPI(env, call)                                     \
  do {                                                            \
    if ((call) != napi_ok) {                                      \
      napi_throw_error((env), nullptr, "netlink addon: " #call); \
      return nullptr;                                             \
    }                                                             \
  } while (0)

napi_value Int(napi_env env, int32_t v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

bool GetInt(napi_env env, napi_value v, int32_t* out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return false;
  return napi_get_value_int32(env, v, out) == napi_ok;
}

// ---- work on a thread inside a namespace ----

struct InNs {
  int ns_fd;
  int (*fn)(InNs*);
  int domain, type, protocol;  // socketIn
  const char* path;            // openIn
  int flags;
  int result;
};

void* InNsThread(void* arg) {
  InNs* job = static_cast<InNs*>(arg);
  if (job->ns_fd >= 0 && setns(job->ns_fd, CLONE_NEWNET) != 0) {
    job->result = -errno;
    return nullptr;
  }
  job->result = job->fn(job);
  return nullptr;
}

int RunInNs(InNs* job) {
  if (job->ns_fd < 0) return job->fn(job);
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  const int r = pthread_create(&thread, &attr, InNsThread, job);
  pthread_attr_destroy(&attr);
  if (r != 0) return -r;
  pthread_join(thread, nullptr);
  return job->result;
}

int DoSocket(InNs* job) {
  const int fd = socket(job->domain, job->type, job->protocol);
  return fd < 0 ? -errno : fd;
}

int DoOpen(InNs* job) {
  const int fd = open(job->path, job->flags | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

napi_value SocketIn(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  InNs job{};
  if (argc != 4 || !GetInt(env, argv[0], &job.ns_fd) || !GetInt(env, argv[1], &job.domain) ||
      !GetInt(env, argv[2], &job.type) || !GetInt(env, argv[3], &job.protocol)) {
    napi_throw_type_error(env, nullptr, "socketIn(nsFd, domain, type, protocol: int32) expected");
    return nullptr;
  }
  job.fn = DoSocket;
  return Int(env, RunInNs(&job));
}

napi_value OpenIn(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  InNs job{};
  char path[4096];
  size_t len = 0;
  if (argc != 3 || !GetInt(env, argv[0], &job.ns_fd) || !GetInt(env, argv[2], &job.flags) ||
      napi_get_value_string_utf8(env, argv[1], path, sizeof path, &len) != napi_ok || len == 0 ||
      len >= sizeof path - 1) {
    napi_throw_type_error(env, nullptr, "openIn(nsFd: int32, path: string, flags: int32) expected");
    return nullptr;
  }
  job.fn = DoOpen;
  job.path = path;
  return Int(env, RunInNs(&job));
}

// ---- socketIn / openIn on the threadpool ----

struct InNsAsync {
  InNs job;
  char path[4096];
  napi_ref callback;
  napi_async_work work;
};

void InNsExecute(napi_env, void* data) {
  InNsAsync* a = static_cast<InNsAsync*>(data);
  a->job.result = RunInNs(&a->job);
}

void InNsComplete(napi_env env, napi_status status, void* data) {
  InNsAsync* a = static_cast<InNsAsync*>(data);
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, global, argv[1], ignored;
  napi_get_reference_value(env, a->callback, &cb);
  napi_get_global(env, &global);
  argv[0] = Int(env, status == napi_cancelled ? -ECANCELED : a->job.result);
  napi_call_function(env, global, cb, 1, argv, &ignored);
  napi_delete_reference(env, a->callback);
  napi_delete_async_work(env, a->work);
  delete a;
  napi_close_handle_scope(env, scope);
}

napi_value QueueInNs(napi_env env, InNsAsync* a, napi_value callback) {
  napi_value name;
  napi_create_string_utf8(env, "datapath:netlink-in-ns", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, callback, 1, &a->callback) != napi_ok) {
    delete a;
    napi_throw_error(env, nullptr, "netlink addon: cannot reference the callback");
    return nullptr;
  }
  if (napi_create_async_work(env, nullptr, name, InNsExecute, InNsComplete, a, &a->work) != napi_ok) {
    napi_delete_reference(env, a->callback);
    delete a;
    napi_throw_error(env, nullptr, "netlink addon: cannot create the async work");
    return nullptr;
  }
  if (napi_queue_async_work(env, a->work) != napi_ok) {
    napi_delete_reference(env, a->callback);
    napi_delete_async_work(env, a->work);
    delete a;
    napi_throw_error(env, nullptr, "netlink addon: cannot queue the async work");
    return nullptr;
  }
  return nullptr;
}

bool IsFunction(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && t == napi_function;
}

napi_value SocketInAsync(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  InNsAsync* a = new InNsAsync();
  if (argc != 5 || !GetInt(env, argv[0], &a->job.ns_fd) || !GetInt(env, argv[1], &a->job.domain) ||
      !GetInt(env, argv[2], &a->job.type) || !GetInt(env, argv[3], &a->job.protocol) || !IsFunction(env, argv[4])) {
    delete a;
    napi_throw_type_error(env, nullptr, "socketInAsync(nsFd, domain, type, protocol: int32, callback) expected");
    return nullptr;
  }
  a->job.fn = DoSocket;
  return QueueInNs(env, a, argv[4]);
}

napi_value OpenInAsync(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  InNsAsync* a = new InNsAsync();
  size_t len = 0;
  if (argc != 4 || !GetInt(env, argv[0], &a->job.ns_fd) || !GetInt(env, argv[2], &a->job.flags) ||
      napi_get_value_string_utf8(env, argv[1], a->path, sizeof a->path, &len) != napi_ok || len == 0 ||
      len >= sizeof a->path - 1 || !IsFunction(env, argv[3])) {
    delete a;
    napi_throw_type_error(env, nullptr, "openInAsync(nsFd: int32, path: string, flags: int32, callback) expected");
    return nullptr;
  }
  a->job.fn = DoOpen;
  a->job.path = a->path;
  return QueueInNs(env, a, argv[3]);
}

// ---- one netlink exchange on the threadpool ----

constexpr size_t kRecvBuffer = 64 * 1024;
constexpr size_t kMaxDatagram = 1024 * 1024;

struct Exchange {
  napi_async_work work;
  napi_ref callback;
  int fd;
  uint32_t seq;
  std::vector<uint8_t> request;
  std::vector<std::vector<uint8_t>> datagrams;
  int error;
};

// Whether the datagram holds the end of the answer to `seq` (an ACK/error, or the end of a dump).
bool Final(const uint8_t* data, size_t len, uint32_t seq) {
  size_t off = 0;
  while (off + sizeof(nlmsghdr) <= len) {
    nlmsghdr h;
    std::memcpy(&h, data + off, sizeof h);
    if (h.nlmsg_len < sizeof(nlmsghdr) || off + h.nlmsg_len > len) return false;
    if (h.nlmsg_seq == seq && (h.nlmsg_type == NLMSG_ERROR || h.nlmsg_type == NLMSG_DONE)) return true;
    off += NLMSG_ALIGN(h.nlmsg_len);
  }
  return false;
}

void ExchangeExecute(napi_env, void* data) {
  Exchange* x = static_cast<Exchange*>(data);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    const ssize_t r = sendto(x->fd, x->request.data(), x->request.size(), 0,
                             reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
    if (r >= 0) break;
    if (errno == EINTR) continue;
    x->error = errno;
    return;
  }
  std::vector<uint8_t> buf(kRecvBuffer);
  for (;;) {
    // Peek at the next datagram's real length first (MSG_TRUNC), so a large one is never cut short.
    const ssize_t len = recv(x->fd, buf.data(), 0, MSG_PEEK | MSG_TRUNC);
    if (len < 0) {
      if (errno == EINTR) continue;
      x->error = errno;  // EAGAIN: the socket's receive timeout expired
      return;
    }
    if (static_cast<size_t>(len) > kMaxDatagram) {
      x->error = EMSGSIZE;
      return;
    }
    if (static_cast<size_t>(len) > buf.size()) buf.resize(static_cast<size_t>(len));
    const ssize_t n = recv(x->fd, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      x->error = errno;
      return;
    }
    x->datagrams.emplace_back(buf.begin(), buf.begin() + n);
    if (Final(buf.data(), static_cast<size_t>(n), x->seq)) return;
  }
}

void ExchangeComplete(napi_env env, napi_status status, void* data) {
  Exchange* x = static_cast<Exchange*>(data);
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, global, argv[2];
  napi_get_reference_value(env, x->callback, &cb);
  napi_get_global(env, &global);
  if (status == napi_cancelled && x->error == 0) x->error = ECANCELED;
  argv[0] = Int(env, x->error);
  if (x->error == 0) {
    napi_create_array_with_length(env, x->datagrams.size(), &argv[1]);
    for (size_t i = 0; i < x->datagrams.size(); i++) {
      napi_value b;
      void* out;
      napi_create_buffer_copy(env, x->datagrams[i].size(), x->datagrams[i].data(), &out, &b);
      napi_set_element(env, argv[1], static_cast<uint32_t>(i), b);
    }
  } else {
    napi_get_undefined(env, &argv[1]);
  }
  napi_value ignored;
  // napi_make_callback is not needed: N-API async work completions already run inside a callback
  // scope, so promises resolved here settle before the loop goes back to waiting.
  napi_call_function(env, global, cb, 2, argv, &ignored);
  napi_delete_reference(env, x->callback);
  napi_delete_async_work(env, x->work);
  delete x;
  napi_close_handle_scope(env, scope);
}

napi_value StartExchange(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t fd, seq;
  bool is_buffer = false;
  napi_valuetype cbt;
  if (argc != 4 || !GetInt(env, argv[0], &fd) || napi_is_buffer(env, argv[1], &is_buffer) != napi_ok ||
      !is_buffer || !GetInt(env, argv[2], &seq) || napi_typeof(env, argv[3], &cbt) != napi_ok ||
      cbt != napi_function) {
    napi_throw_type_error(env, nullptr, "exchange(fd, request: Buffer, seq, callback) expected");
    return nullptr;
  }
  void* req;
  size_t req_len;
  CHECK_NAPI(env, napi_get_buffer_info(env, argv[1], &req, &req_len));
  Exchange* x = new Exchange();
  x->fd = fd;
  x->seq = static_cast<uint32_t>(seq);
  x->request.assign(static_cast<uint8_t*>(req), static_cast<uint8_t*>(req) + req_len);
  x->error = 0;
  napi_value name;
  napi_create_string_utf8(env, "datapath:netlink", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, argv[3], 1, &x->callback) != napi_ok ||
      napi_create_async_work(env, nullptr, name, ExchangeExecute, ExchangeComplete, x, &x->work) != napi_ok) {
    delete x;
    napi_throw_error(env, nullptr, "netlink addon: cannot create the async work");
    return nullptr;
  }
  if (napi_queue_async_work(env, x->work) != napi_ok) {
    napi_delete_reference(env, x->callback);
    napi_delete_async_work(env, x->work);
    delete x;
    napi_throw_error(env, nullptr, "netlink addon: cannot queue the async work");
    return nullptr;
  }
  return nullptr;
}

}  // namespace

NAPI_MODULE_INIT(/* env, exports */) {
  const struct {
    const char* name;
    napi_callback fn;
  } fns[] = {{"socketIn", SocketIn},
             {"openIn", OpenIn},
             {"socketInAsync", SocketInAsync},
             {"openInAsync", OpenInAsync},
             {"exchange", StartExchange}};
  for (const auto& f : fns) {
    napi_value v;
    if (napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &v) != napi_ok ||
        napi_set_named_property(env, exports, f.name, v) != napi_ok)
      return nullptr;
  }
  return exports;
}

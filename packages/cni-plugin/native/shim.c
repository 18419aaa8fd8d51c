/*
 * datapath-cni's forwarder for agent mode: what a container runtime execs when the plugin is installed with
 * the shim. It holds no plugin logic. It reads the CNI_* variables and stdin; when the config's top-level
 * "mode" is "agent" it sends them in one HTTP request to the datapath agent's unix socket ("agentSocket",
 * default /run/datapath-agent/demo/api.sock), sends the confirmation the agent asks for (X-Cni-Confirm),
 * prints the agent's answer and exits with the status the agent gives (X-Cni-Exit). Any other config goes
 * to the Node plugin: stdin is put in a memfd and the launcher beside this file (<self>.d/launch) is exec'd.
 * An agent that cannot be reached is CNI error 11 (try again later), 50 for STATUS.
 *
 * Built by native/build.mjs (static when the C library allows). Only the top level of the config is
 * scanned, for three string keys; the agent parses and validates everything.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/datapath-agent/demo/api.sock"
#define MAX_STDIN (16 << 20)

struct buf {
  char *p;
  size_t n, cap;
};

static void put(struct buf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) _exit(70);
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}
static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }

/* A JSON string literal of s[0..n). */
static void put_json(struct buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  put(b, "\"", 1);
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    put(b, s + start, i - start);
    char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
    if (c == '"' || c == '\\') {
      esc[1] = (char)c;
      put(b, esc, 2);
    } else {
      put(b, esc, 6);
    }
    start = i + 1;
  }
  put(b, s + start, n - start);
  put(b, "\"", 1);
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

/* Skips a JSON string starting at *i (on the opening quote); returns the end (after the closing quote). */
static size_t skip_string(const char *s, size_t n, size_t i) {
  for (i++; i < n; i++) {
    if (s[i] == '\\') i++;
    else if (s[i] == '"') return i + 1;
  }
  return n;
}

/*
 * Finds the string value of a top-level key of the JSON object in s; copies it (simple escapes undone) into
 * out. Returns 1 when found as a string.
 */
static int top_string(const char *s, size_t n, const char *key, char *out, size_t outsz) {
  size_t klen = strlen(key);
  int depth = 0;
  for (size_t i = 0; i < n;) {
    char c = s[i];
    if (c == '"') {
      size_t end = skip_string(s, n, i);
      if (depth == 1 && end - i - 2 == klen && memcmp(s + i + 1, key, klen) == 0) {
        size_t j = end;
        while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r' || s[j] == '\n')) j++;
        if (j < n && s[j] == ':') {
          j++;
          while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r' || s[j] == '\n')) j++;
          if (j >= n || s[j] != '"') return 0;
          size_t vend = skip_string(s, n, j), o = 0;
          for (size_t k = j + 1; k + 1 < vend && o + 1 < outsz; k++) {
            if (s[k] == '\\' && k + 2 < vend) k++;
            out[o++] = s[k];
          }
          out[o] = 0;
          return 1;
        }
      }
      i = end;
      continue;
    }
    if (c == '{' || c == '[') depth++;
    else if (c == '}' || c == ']') depth--;
    i++;
  }
  return 0;
}

static void cni_error(const char *version, int code, const char *msg, const char *details) {
  struct buf b = {0};
  puts_(&b, "{\"cniVersion\":");
  put_json(&b, version, strlen(version));
  char num[32];
  snprintf(num, sizeof num, ",\"code\":%d,\"msg\":", code);
  puts_(&b, num);
  put_json(&b, msg, strlen(msg));
  puts_(&b, ",\"details\":");
  put_json(&b, details, strlen(details));
  puts_(&b, "}\n");
  write_all(1, b.p, b.n);
  exit(1);
}

/* Reads one HTTP response (Content-Length framed) from fd into r; returns the offset of the body. */
static size_t read_response(int fd, struct buf *r, long *status, long *clen) {
  char chunk[65536];
  size_t hdr_end = 0;
  *clen = -1;
  for (;;) {
    if (hdr_end == 0) {
      char *e = r->p ? strstr(r->p, "\r\n\r\n") : NULL;
      if (e) {
        hdr_end = (size_t)(e - r->p) + 4;
        *status = strtol(r->p + 9, NULL, 10);
        for (char *h = strstr(r->p, "\r\n"); h && h < r->p + hdr_end; h = strstr(h + 2, "\r\n")) {
          if (strncasecmp(h + 2, "content-length:", 15) == 0) *clen = strtol(h + 17, NULL, 10);
        }
      }
    }
    if (hdr_end && *clen >= 0 && r->n >= hdr_end + (size_t)*clen) return hdr_end;
    ssize_t got = read(fd, chunk, sizeof chunk);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return hdr_end ? hdr_end : (size_t)-1;
    put(r, chunk, (size_t)got);
  }
}

/* The value of a response header (case-insensitive name) in out; 1 when present. */
static int header(const struct buf *r, size_t hdr_end, const char *name, char *out, size_t outsz) {
  size_t nl = strlen(name);
  for (char *h = strstr(r->p, "\r\n"); h && h < r->p + hdr_end - 2; h = strstr(h + 2, "\r\n")) {
    if (strncasecmp(h + 2, name, nl) == 0 && h[2 + nl] == ':') {
      char *v = h + 3 + nl;
      while (*v == ' ') v++;
      char *e = strstr(v, "\r\n");
      size_t n = (size_t)(e - v);
      if (n >= outsz) n = outsz - 1;
      memcpy(out, v, n);
      out[n] = 0;
      return 1;
    }
  }
  return 0;
}

static void exec_node(const char *input, size_t n, char **argv) {
  char self[PATH_MAX], launcher[PATH_MAX + 16];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len < 0) cni_error("1.1.0", 999, "datapath-cni shim: cannot find itself", strerror(errno));
  self[len] = 0;
  snprintf(launcher, sizeof launcher, "%s.d/launch", self);
  int mfd = memfd_create("cni-stdin", MFD_CLOEXEC);
  if (mfd < 0) cni_error("1.1.0", 999, "datapath-cni shim: memfd_create failed", strerror(errno));
  write_all(mfd, input, n);
  lseek(mfd, 0, SEEK_SET);
  dup2(mfd, 0);
  argv[0] = launcher;
  execv(launcher, argv);
  cni_error("1.1.0", 999, "datapath-cni shim: cannot run the Node plugin", launcher);
}

static const char *const VARS[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS",
                                   "CNI_IFNAME",  "CNI_ARGS",        "CNI_PATH"};

int main(int argc, char **argv) {
  (void)argc;
  struct buf in = {0};
  char chunk[65536];
  for (;;) {
    ssize_t got = read(0, chunk, sizeof chunk);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    put(&in, chunk, (size_t)got);
    if (in.n > MAX_STDIN) cni_error("1.1.0", 5, "datapath-cni: stdin over 16 MiB", "");
  }
  char mode[32] = "", sock[sizeof(((struct sockaddr_un *)0)->sun_path)] = DEFAULT_SOCKET,
       version[32] = "1.1.0";
  const char *command = getenv("CNI_COMMAND");
  /* VERSION is answered by the plugin itself: it needs no agent. */
  if (command == NULL || strcmp(command, "VERSION") == 0 || in.n == 0 ||
      !top_string(in.p, in.n, "mode", mode, sizeof mode) || strcmp(mode, "agent") != 0) {
    exec_node(in.p ? in.p : "", in.n, argv);
  }
  top_string(in.p, in.n, "agentSocket", sock, sizeof sock);
  top_string(in.p, in.n, "cniVersion", version, sizeof version);
  int down = strcmp(command, "STATUS") == 0 ? 50 : 11;

  struct buf body = {0};
  puts_(&body, "{\"env\":{");
  int first = 1;
  for (size_t i = 0; i < sizeof VARS / sizeof VARS[0]; i++) {
    const char *v = getenv(VARS[i]);
    if (v == NULL) continue;
    if (!first) puts_(&body, ",");
    first = 0;
    put_json(&body, VARS[i], strlen(VARS[i]));
    puts_(&body, ":");
    put_json(&body, v, strlen(v));
  }
  puts_(&body, "},\"stdin\":");
  put_json(&body, in.p, in.n);
  puts_(&body, "}");

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  memcpy(addr.sun_path, sock, strnlen(sock, sizeof addr.sun_path - 1));
  struct timeval tv = {.tv_sec = 120};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  char msg[512];
  snprintf(msg, sizeof msg, "datapath agent not reachable at %s (is `agent serve` running?)", sock);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) cni_error(version, down, msg, strerror(errno));

  struct buf req = {0};
  char head[256];
  snprintf(head, sizeof head,
           "POST /v1/cni HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
           body.n);
  puts_(&req, head);
  put(&req, body.p, body.n);
  write_all(fd, req.p, req.n);

  struct buf res = {0};
  long status = 0, clen = 0;
  size_t at = read_response(fd, &res, &status, &clen);
  if (at == (size_t)-1 || clen < 0) cni_error(version, down, msg, "the agent closed the connection without an answer");
  char exitv[16], confirm[1024];
  if (status != 200 || !header(&res, at, "x-cni-exit", exitv, sizeof exitv)) {
    snprintf(msg, sizeof msg, "datapath agent at %s answered HTTP %ld", sock, status);
    cni_error(version, 999, msg, res.p + at);
  }
  if (header(&res, at, "x-cni-confirm", confirm, sizeof confirm)) {
    /* Confirm before printing: an ADD whose lease expired meanwhile (the pod is gone again) must fail. */
    struct buf c = {0}, cres = {0};
    puts_(&c, "POST ");
    puts_(&c, confirm);
    puts_(&c, " HTTP/1.1\r\nHost: agent\r\nContent-Length: 0\r\n\r\n");
    write_all(fd, c.p, c.n);
    long cstatus = 0, cclen = 0;
    size_t cat = read_response(fd, &cres, &cstatus, &cclen);
    if (cat == (size_t)-1 || cstatus != 200) {
      snprintf(msg, sizeof msg, "datapath agent did not confirm the ADD (HTTP %ld): its lease expired", cstatus);
      cni_error(version, 11, msg, cat == (size_t)-1 ? "" : cres.p + cat);
    }
  }
  write_all(1, res.p + at, (size_t)clen);
  return (int)strtol(exitv, NULL, 10);
}

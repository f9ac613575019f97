// command_test.hpp - child processes for the tests that talk to real tools we did not write
// (python3, curl, wrk, openssl), header-only:
//
//   have(tool)                 whether `tool` is on the PATH
//   sh_quote(s)                `s` quoted for sh
//   Outcome                    what a child wrote (stdout, stderr) and its exit code
//   TempFile                   a scratch file, removed on destruction
//   run_command(cmd)           runs `cmd` with sh and waits (blocking)
//   Child                      a popen'd child whose stdout is read a line at a time (blocking)
//   run_in_thread / line_in_thread / wait_in_thread
//                              the same through asyncio::to_thread, so the loop keeps running
#pragma once

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include <sys/wait.h>
#include <unistd.h>

#include <asyncio.hpp>

namespace asyncio_test {

/// Whether `tool` is on the PATH.
inline bool have(const std::string& tool) {
  const std::string cmd = "command -v " + tool + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;  // NOLINT(cert-env33-c): a test's own command
}

/// `s` quoted for sh: '...' with every ' written as '\''.
inline std::string sh_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += "'";
  return out;
}

/// What a child wrote and how it ended.
struct Outcome {
  int exit_code = -1;  // -1: did not exit normally
  std::string out;     // its stdout
  std::string err;     // its stderr
};

/// A scratch file, removed on destruction.
class TempFile {
 public:
  TempFile() {
    char tmpl[] = "/tmp/asyncio-command-XXXXXX";
    const int fd = ::mkstemp(tmpl);
    if (fd >= 0) ::close(fd);
    path_ = tmpl;
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() { ::unlink(path_.c_str()); }
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string contents() const {
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::string path_;
};

inline std::string read_all(FILE* f) {
  std::string out;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
  return out;
}

inline int exit_code_of(int status) {
  return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// Runs `command` with sh and waits for it (blocking: call it through to_thread); its stdout
/// and stderr are captured.
inline Outcome run_command(const std::string& command) {
  TempFile err;
  const std::string full = command + " 2>" + sh_quote(err.path());
  Outcome o;
  FILE* f = ::popen(full.c_str(), "r");
  if (f == nullptr) {
    o.err = std::string("popen: ") + std::strerror(errno);
    return o;
  }
  o.out = read_all(f);
  o.exit_code = exit_code_of(::pclose(f));
  o.err = err.contents();
  return o;
}

/// A child started with popen whose stdout is read a line at a time (blocking calls: go
/// through to_thread). pclose on destruction if not waited for.
class Child {
 public:
  explicit Child(const std::string& command) : f_(::popen(command.c_str(), "r")) {}
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (f_ != nullptr) ::pclose(f_);
  }
  [[nodiscard]] bool started() const { return f_ != nullptr; }
  /// The next line of its stdout ("" at EOF).
  std::string line() {
    std::string out;
    int c = 0;
    while ((c = std::fgetc(f_)) != EOF) {
      out += static_cast<char>(c);
      if (c == '\n') break;
    }
    return out;
  }
  /// The rest of its stdout, then its exit code.
  Outcome wait() {
    Outcome o;
    o.out = read_all(f_);
    o.exit_code = exit_code_of(::pclose(f_));
    f_ = nullptr;
    return o;
  }

 private:
  FILE* f_;
};

// Blocking calls run on the default executor (plain functions: no lambda in a coroutine body).
inline asyncio::Future<Outcome> run_in_thread(std::string command) {
  return asyncio::to_thread(run_command, std::move(command));
}
inline asyncio::Future<std::string> line_in_thread(Child* child) {
  return asyncio::to_thread([child] { return child->line(); });
}
inline asyncio::Future<Outcome> wait_in_thread(Child* child) {
  return asyncio::to_thread([child] { return child->wait(); });
}

}  // namespace asyncio_test

#include <spdlog/spdlog.h>

#include <asio.hpp>
#include <exception>
#include <mutex>
#include <thread>

#include "net/rpc.h"

namespace treaty::net {

struct IoThread::Impl {
  asio::io_context io{1};
  // Keeps run() going while idle; Stop ends it with io.stop().
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  std::thread thread;
  std::mutex join_mu;  // one joiner at a time
};

IoThread::IoThread() : impl_(std::make_unique<Impl>()) {
  impl_->thread = std::thread([io = &impl_->io] {
    // An exception thrown by a handler must not end the thread: log it and keep serving.
    for (;;) {
      try {
        io->run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("net: exception escaped an io handler: {}", e.what());
      } catch (...) {
        spdlog::error("net: non-standard exception escaped an io handler");
      }
    }
  });
}

IoThread::~IoThread() { Stop(); }

asio::io_context& IoThread::io() { return impl_->io; }

void IoThread::Stop() {
  impl_->io.stop();  // thread-safe; run() returns after the handler in progress
  // From a handler on the io thread itself the thread cannot be joined; a later Stop from another
  // thread (e.g. the destructor) joins it.
  if (impl_->io.get_executor().running_in_this_thread()) return;
  std::lock_guard<std::mutex> lock(impl_->join_mu);
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace treaty::net

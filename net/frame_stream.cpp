#include "net/frame_stream.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <utility>

#include "net/frame.h"

namespace treaty::net {
namespace {

std::string PeerName(const asio::ip::tcp::socket& socket) {
  asio::error_code ec;
  const asio::ip::tcp::endpoint ep = socket.remote_endpoint(ec);
  if (ec) return "unknown peer";
  if (ep.address().is_v6())
    return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

}  // namespace

FrameStream::FrameStream(asio::ip::tcp::socket socket, size_t max_frame_bytes)
    : socket_(std::move(socket)), max_frame_bytes_(max_frame_bytes), peer_(PeerName(socket_)) {
  asio::error_code ec;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  if (ec) spdlog::warn("net: cannot set TCP_NODELAY for {}: {}", peer_, ec.message());
  read_buf_.resize(kReadChunkBytes);
}

FrameStream::~FrameStream() = default;

void FrameStream::Start() { ReadMore(); }

void FrameStream::ReadMore() {
  if (closed_) return;
  socket_.async_read_some(asio::buffer(read_buf_.data() + read_end_, read_buf_.size() - read_end_),
                          [self = shared_from_this()](const asio::error_code& ec, size_t bytes) {
                            self->OnRead(ec, bytes);
                          });
}

void FrameStream::OnRead(const asio::error_code& ec, size_t bytes) {
  if (closed_) return;
  if (ec) {
    if (ec == asio::error::eof) {
      Close("peer closed the connection");
    } else {
      Close("read failed: " + ec.message());
    }
    return;
  }
  read_end_ += bytes;
  ParseFrames();
  ReadMore();
}

void FrameStream::ParseFrames() {
  while (!closed_ && read_end_ - read_begin_ >= kFrameHeaderBytes) {
    const uint32_t body = GetFrameHeader(read_buf_.data() + read_begin_);
    if (body == 0) {
      Close("malformed frame: zero length", /*protocol_error=*/true);
      return;
    }
    if (body > max_frame_bytes_) {
      Close("frame of " + std::to_string(body) + " bytes exceeds the maximum of " +
                std::to_string(max_frame_bytes_) + " bytes",
            /*protocol_error=*/true);
      return;
    }
    const size_t frame = kFrameHeaderBytes + body;
    if (read_end_ - read_begin_ < frame) {
      // Incomplete: make sure the whole frame fits behind read_begin_ once it has arrived.
      if (read_buf_.size() - read_begin_ < frame) {
        std::memmove(read_buf_.data(), read_buf_.data() + read_begin_, read_end_ - read_begin_);
        read_end_ -= read_begin_;
        read_begin_ = 0;
        if (read_buf_.size() < frame) read_buf_.resize(frame);
      }
      break;
    }
    v1::Envelope envelope;
    if (!envelope.ParseFromArray(read_buf_.data() + read_begin_ + kFrameHeaderBytes,
                                 static_cast<int>(body))) {
      Close("malformed frame: " + std::to_string(body) + " bytes that are not an Envelope",
            /*protocol_error=*/true);
      return;
    }
    read_begin_ += frame;
    OnFrame(std::move(envelope));
  }
  if (closed_) return;
  if (read_begin_ == read_end_) {
    read_begin_ = read_end_ = 0;
    if (read_buf_.size() > kReadChunkBytes) {
      read_buf_.resize(kReadChunkBytes);
      read_buf_.shrink_to_fit();
    }
  } else if (read_end_ == read_buf_.size()) {
    // A partial header or frame sits at the very end: move it to the front to read more.
    std::memmove(read_buf_.data(), read_buf_.data() + read_begin_, read_end_ - read_begin_);
    read_end_ -= read_begin_;
    read_begin_ = 0;
  }
}

void FrameStream::Send(std::string frame) {
  if (closed_) return;
  queued_.push_back(std::move(frame));
  ScheduleFlush();
}

void FrameStream::ScheduleFlush() {
  if (write_in_flight_ || flush_scheduled_) return;
  flush_scheduled_ = true;
  // Deferred to the end of this turn of the event loop so that every frame produced meanwhile
  // (e.g. responses to all requests of one read) joins the same write.
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    self->flush_scheduled_ = false;
    self->Flush();
  });
}

void FrameStream::Flush() {
  if (closed_ || write_in_flight_ || queued_.empty()) return;
  writing_.swap(queued_);
  write_bufs_.clear();
  write_bufs_.reserve(writing_.size());
  for (const std::string& f : writing_) write_bufs_.push_back(asio::buffer(f));
  write_in_flight_ = true;
  asio::async_write(
      socket_, write_bufs_,
      [self = shared_from_this()](const asio::error_code& ec, size_t) { self->OnWritten(ec); });
}

void FrameStream::OnWritten(const asio::error_code& ec) {
  write_in_flight_ = false;
  writing_.clear();
  if (closed_) return;
  if (ec) {
    Close("write failed: " + ec.message());
    return;
  }
  Flush();
}

void FrameStream::Close(const std::string& reason, bool protocol_error) {
  if (closed_) return;
  closed_ = true;
  if (protocol_error) {
    spdlog::warn("net: closing connection with {}: {}", peer_, reason);
  } else {
    spdlog::debug("net: connection with {} closed: {}", peer_, reason);
  }
  asio::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  queued_.clear();
  OnClosed(reason);
}

}  // namespace treaty::net

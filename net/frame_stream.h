// Private to net/: one TCP connection carrying length-prefixed Envelope frames. Shared by the
// server's sessions and the client's connections.
#pragma once

#include <asio.hpp>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "treaty/v1/envelope.pb.h"

namespace treaty::net {

// Reads frames in a loop and hands each parsed Envelope to OnFrame; writes queued frames with one
// gathered async_write per batch. A frame whose length is zero or above max_frame_bytes, or whose
// body does not parse, closes the connection with a warning naming the peer and the reason.
//
// Thread-safety: every method must run on the io_context's thread (one thread runs it). Pending
// asynchronous operations hold a shared_ptr to the stream, so it lives until they complete.
class FrameStream : public std::enable_shared_from_this<FrameStream> {
 public:
  // socket must be connected. Sets TCP_NODELAY.
  FrameStream(asio::ip::tcp::socket socket, size_t max_frame_bytes);
  virtual ~FrameStream();
  FrameStream(const FrameStream&) = delete;
  FrameStream& operator=(const FrameStream&) = delete;

  // Starts the read loop. REQUIRES: called once, on a stream owned by a shared_ptr.
  void Start();

  // Queues one encoded frame (prefix + body). Frames queued during one turn of the event loop go
  // out in a single write. Ignored after Close.
  void Send(std::string frame);

  // Closes the socket and calls OnClosed(reason) once; later calls do nothing. protocol_error
  // selects the log level: warn for a misbehaving peer, debug for an ordinary close.
  void Close(const std::string& reason, bool protocol_error = false);

  bool closed() const { return closed_; }
  // "address:port" of the remote end, captured at construction.
  const std::string& peer() const { return peer_; }

 protected:
  // Called for every well-formed frame, in arrival order. May call Close.
  virtual void OnFrame(v1::Envelope envelope) = 0;
  // Called exactly once, when the stream closes for any reason.
  virtual void OnClosed(const std::string& reason) = 0;

 private:
  void ReadMore();
  void OnRead(const asio::error_code& ec, size_t bytes);
  // Dispatches every complete frame in the buffer; makes room for the next read.
  void ParseFrames();
  void ScheduleFlush();
  void Flush();
  void OnWritten(const asio::error_code& ec);

  // The initial read buffer size; it grows up to one maximal frame when a large frame arrives
  // and shrinks back once that frame has been consumed.
  static constexpr size_t kReadChunkBytes = 64 * 1024;

  asio::ip::tcp::socket socket_;
  const size_t max_frame_bytes_;
  std::string peer_;
  bool closed_ = false;

  std::vector<char> read_buf_;
  size_t read_begin_ = 0;  // first unparsed byte
  size_t read_end_ = 0;    // one past the last received byte

  std::vector<std::string> queued_;   // frames waiting for the next write
  std::vector<std::string> writing_;  // frames of the write in flight
  std::vector<asio::const_buffer> write_bufs_;
  bool write_in_flight_ = false;
  bool flush_scheduled_ = false;
};

}  // namespace treaty::net

// Private to the sink module: pieces the formatters, the writer and the compressor share.
#pragma once

#include <mdagg/sink.hpp>

#include <atomic>
#include <cstdint>
#include <string>

namespace mdagg::sink_detail {

// "2025-11-24T16:00:00.123456789Z", unquoted.
void append_rfc3339(std::string& out, std::int64_t ns);

// Compresses everything readable from in_fd into out_fd (gzip or zstd). Returns 0, an errno
// value, or -1 when `cancel` was set (checked between blocks). Writes nothing else.
int compress_stream(int in_fd, int out_fd, Compression method, const std::atomic<bool>& cancel);

// ".gz" or ".zst"; "" for none.
const char* compression_suffix(Compression method);

}  // namespace mdagg::sink_detail

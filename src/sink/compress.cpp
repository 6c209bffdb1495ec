// Streaming compression of finished segments, on the compressor thread only.
#include "detail.hpp"

#include <cerrno>
#include <memory>
#include <vector>

#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

namespace mdagg::sink_detail {
namespace {

constexpr std::size_t block = 1 << 20;

// Reads up to n bytes; 0 at end of file, -errno on error.
ssize_t read_some(int fd, char* p, std::size_t n) {
    for (;;) {
        const ssize_t r = ::read(fd, p, n);
        if (r >= 0) return r;
        if (errno != EINTR) return -errno;
    }
}

int write_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w > 0) {
            p += w;
            n -= static_cast<std::size_t>(w);
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else {
            return w < 0 ? errno : EIO;
        }
    }
    return 0;
}

int gzip(int in_fd, int out_fd, const std::atomic<bool>& cancel) {
    z_stream z{};
    // 15 window bits + 16: a gzip header and trailer, so `gzip -d` and `zcat` read the file.
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return ENOMEM;
    std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&z, &deflateEnd);
    std::vector<char> in(block), out(block);
    for (;;) {
        if (cancel.load(std::memory_order_relaxed)) return -1;
        const ssize_t n = read_some(in_fd, in.data(), in.size());
        if (n < 0) return static_cast<int>(-n);
        const int flush = n == 0 ? Z_FINISH : Z_NO_FLUSH;
        z.next_in = reinterpret_cast<Bytef*>(in.data());
        z.avail_in = static_cast<uInt>(n);
        int rc;
        do {
            z.next_out = reinterpret_cast<Bytef*>(out.data());
            z.avail_out = static_cast<uInt>(out.size());
            rc = deflate(&z, flush);
            if (rc == Z_STREAM_ERROR) return EIO;
            if (int e = write_all(out_fd, out.data(), out.size() - z.avail_out)) return e;
        } while (z.avail_out == 0);
        if (flush == Z_FINISH) return rc == Z_STREAM_END ? 0 : EIO;
    }
}

int zstd(int in_fd, int out_fd, const std::atomic<bool>& cancel) {
    std::unique_ptr<ZSTD_CCtx, std::size_t (*)(ZSTD_CCtx*)> cctx(ZSTD_createCCtx(), &ZSTD_freeCCtx);
    if (!cctx) return ENOMEM;
    ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);
    std::vector<char> in(block), out(ZSTD_CStreamOutSize());
    for (;;) {
        if (cancel.load(std::memory_order_relaxed)) return -1;
        const ssize_t n = read_some(in_fd, in.data(), in.size());
        if (n < 0) return static_cast<int>(-n);
        const ZSTD_EndDirective mode = n == 0 ? ZSTD_e_end : ZSTD_e_continue;
        ZSTD_inBuffer input{in.data(), static_cast<std::size_t>(n), 0};
        bool done;
        do {
            ZSTD_outBuffer output{out.data(), out.size(), 0};
            const std::size_t remaining = ZSTD_compressStream2(cctx.get(), &output, &input, mode);
            if (ZSTD_isError(remaining)) return EIO;
            if (int e = write_all(out_fd, out.data(), output.pos)) return e;
            done = mode == ZSTD_e_end ? remaining == 0 : input.pos == input.size;
        } while (!done);
        if (mode == ZSTD_e_end) return 0;
    }
}

}  // namespace

int compress_stream(int in_fd, int out_fd, Compression method, const std::atomic<bool>& cancel) {
    switch (method) {
        case Compression::gzip: return gzip(in_fd, out_fd, cancel);
        case Compression::zstd: return zstd(in_fd, out_fd, cancel);
        case Compression::none: break;
    }
    return EINVAL;
}

const char* compression_suffix(Compression method) {
    switch (method) {
        case Compression::gzip: return ".gz";
        case Compression::zstd: return ".zst";
        case Compression::none: break;
    }
    return "";
}

}  // namespace mdagg::sink_detail

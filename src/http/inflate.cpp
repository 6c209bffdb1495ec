// Response bodies in gzip or deflate (accept_encoding: gzip). A body is inflated once it is
// complete, in one call on the poller's thread, so one zlib state per thread serves every
// poller of it: a state per poller would cost ~45 KiB each, 90 MiB at 2,000 pollers.
#include <mdagg/http.hpp>

#include <zlib.h>

#include <array>

namespace mdagg::http {

namespace {

class BodyErrorCategory final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "mdagg.body"; }
    std::string message(int e) const override {
        switch (static_cast<BodyError>(e)) {
            case BodyError::inflated_too_large: return "the body inflates past max_body_bytes";
            case BodyError::corrupt_encoding: return "corrupt or truncated compressed body";
            case BodyError::unsupported_encoding: return "unsupported Content-Encoding";
        }
        return "body error";
    }
};

// Output goes through this much at a time: `out` never holds more than the limit.
constexpr std::size_t chunk_bytes = 16 * 1024;

}  // namespace

const boost::system::error_category& body_error_category() noexcept {
    static const BodyErrorCategory category;
    return category;
}

boost::system::error_code make_error_code(BodyError e) noexcept {
    return {static_cast<int>(e), body_error_category()};
}

struct Inflater::State {
    z_stream z{};
    bool ready = false;
};

Inflater::Inflater() : state_(new State) {
    // 15 + 32: the largest window, and gzip or zlib header detected from the bytes.
    state_->ready = inflateInit2(&state_->z, 15 + 32) == Z_OK;
}

Inflater::~Inflater() {
    if (state_->ready) inflateEnd(&state_->z);
    delete state_;
}

boost::system::error_code Inflater::inflate(std::string_view in, std::string& out, std::size_t limit) {
    out.clear();
    z_stream& z = state_->z;
    if (!state_->ready || inflateReset(&z) != Z_OK) return make_error_code(BodyError::corrupt_encoding);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    std::array<char, chunk_bytes> chunk;
    for (;;) {
        z.next_out = reinterpret_cast<Bytef*>(chunk.data());
        z.avail_out = static_cast<uInt>(chunk.size());
        const int rc = ::inflate(&z, Z_NO_FLUSH);
        const std::size_t produced = chunk.size() - z.avail_out;
        if (produced > limit - out.size()) return make_error_code(BodyError::inflated_too_large);
        out.append(chunk.data(), produced);
        if (rc == Z_STREAM_END) {
            if (z.avail_in == 0) return {};
            // Another gzip member follows (RFC 1952 2.2): a new stream on the same state.
            if (inflateReset(&z) != Z_OK) return make_error_code(BodyError::corrupt_encoding);
            continue;
        }
        // With room to write and no end, Z_BUF_ERROR means the input ran out: truncated.
        if (rc != Z_OK) return make_error_code(BodyError::corrupt_encoding);
    }
}

boost::system::error_code decode_body(std::string& body, ContentEncoding encoding, std::size_t limit) {
    if (encoding == ContentEncoding::identity || body.empty()) return {};
    if (encoding == ContentEncoding::other) return make_error_code(BodyError::unsupported_encoding);
    thread_local Inflater inflater;
    thread_local std::string inflated;
    const boost::system::error_code ec = inflater.inflate(body, inflated, limit);
    // The compressed bytes' buffer becomes this thread's for the next body: no copy, and each
    // buffer keeps its capacity.
    if (!ec) body.swap(inflated);
    return ec;
}

}  // namespace mdagg::http

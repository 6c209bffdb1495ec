// Retention: the oldest finished segments go once a stream holds more than retain_files
// files or retain_bytes bytes. Only regular files named like our segments count.
#include "file_sink.hpp"

#include <cerrno>
#include <filesystem>
#include <utility>

namespace mdagg::sink_detail {

namespace fs = std::filesystem;

void State::apply_retention(Kind kind) {
    if (opt.retain_files == 0 && opt.retain_bytes == 0) return;
    std::lock_guard lk(fs_mutex);
    std::vector<std::pair<std::string, std::uint64_t>> files;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (!is_finished_segment(name, kind)) continue;
        // Only our own files: a symlink named like a segment is not one.
        std::error_code type_ec;
        if (!it->is_regular_file(type_ec) || it->is_symlink(type_ec)) continue;
        std::error_code size_ec;
        const auto size = it->file_size(size_ec);
        if (!size_ec) files.emplace_back(name, size);
    }
    if (ec) {
        log::warn("retention: cannot list the output directory", {{"dir", dir}, {"error", ec.message()}});
        return;
    }
    std::sort(files.begin(), files.end());  // names sort by time
    std::uint64_t count = files.size(), bytes = 0;
    for (auto& f : files) bytes += f.second;
    bool removed = false;
    for (auto& [name, size] : files) {
        if (!((opt.retain_files && count > opt.retain_files) || (opt.retain_bytes && bytes > opt.retain_bytes)))
            break;
        const std::string path = dir + "/" + name;
        if (::unlink(path.c_str()) != 0) {
            log::warn("retention: cannot remove a segment", {{"path", path}, {"error", error_text(errno)}});
            continue;
        }
        --count;
        bytes -= size;
        removed = true;
        streams[kind].counters.segments_deleted.fetch_add(1, std::memory_order_relaxed);
        log::info("output segment removed by retention", {{"path", path}, {"bytes", size}});
    }
    if (removed) (void)sync_dir(dir);
}

}  // namespace mdagg::sink_detail

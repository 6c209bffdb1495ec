// Private to lifecycle: the admin server's start-up checks and its bearer token, from the
// config at start-up, on a reload, and from admin.token_file while the daemon runs.
#pragma once

#include "token_watch.hpp"

#include <mdagg/admin.hpp>
#include <mdagg/config.hpp>

#include <boost/asio/io_context.hpp>

#include <memory>
#include <string>

namespace mdagg::lifecycle {

// 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104: only this host can connect.
bool is_loopback(const std::string& host);

class AdminAccess {
public:
    AdminAccess(boost::asio::io_context& io, const Config& config, admin::Backend& backend);

    // Binds the port and logs how it is protected. Throws StartupError.
    void start();
    // SIGHUP: the token of the reloaded config. Control strand.
    void reload(const Config& loaded);
    void stop();

private:
    void install_token(std::string token);

    boost::asio::io_context& io_;
    const Config& config_;
    admin::Backend& backend_;
    std::unique_ptr<admin::Server> server_;
    // After server_: stopped before the server it hands tokens to is destroyed.
    TokenFileWatcher token_watch_{std::chrono::seconds(1), [this](std::string token) {
                                      install_token(std::move(token));
                                  }};
};

}  // namespace mdagg::lifecycle

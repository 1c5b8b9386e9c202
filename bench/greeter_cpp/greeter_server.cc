// The realistic backend of the benchmark: the classic helloworld.Greeter in C++ on Debian's
// libgrpc++ (callback API, the one gRPC recommends for new servers). Plaintext h2c.
//
//   greeter_server PORT [ADDR]   listens on ADDR:PORT (default 127.0.0.1) until SIGTERM/SIGINT;
//                                bench/run.sh's netns scenarios pass 0.0.0.0
//
// Replies "Hello, <name>" to SayHello and "Hello again, <name>" to SayHelloAgain. Nothing
// else: no logging per call, so the server costs what a small real service costs.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "helloworld.grpc.pb.h"

namespace {

class GreeterImpl final : public helloworld::Greeter::CallbackService {
	grpc::ServerUnaryReactor *SayHello(grpc::CallbackServerContext *ctx,
					   const helloworld::HelloRequest *req,
					   helloworld::HelloReply *reply) override
	{
		reply->set_message("Hello, " + req->name());
		auto *r = ctx->DefaultReactor();
		r->Finish(grpc::Status::OK);
		return r;
	}
	grpc::ServerUnaryReactor *SayHelloAgain(grpc::CallbackServerContext *ctx,
						const helloworld::HelloRequest *req,
						helloworld::HelloReply *reply) override
	{
		reply->set_message("Hello again, " + req->name());
		auto *r = ctx->DefaultReactor();
		r->Finish(grpc::Status::OK);
		return r;
	}
};

volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

} // namespace

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3 || std::atoi(argv[1]) <= 0) {
		std::fprintf(stderr, "usage: %s PORT [ADDR]\n", argv[0]);
		return 2;
	}
	std::string addr = std::string(argc == 3 ? argv[2] : "127.0.0.1") + ":" + argv[1];
	GreeterImpl service;
	grpc::ServerBuilder builder;
	int bound = 0;
	builder.AddListeningPort(addr, grpc::InsecureServerCredentials(), &bound);
	builder.RegisterService(&service);
	std::unique_ptr<grpc::Server> server(builder.BuildAndStart());
	if (!server || bound == 0) {
		std::fprintf(stderr, "greeter_server: cannot listen on %s\n", addr.c_str());
		return 1;
	}
	std::signal(SIGTERM, on_signal);
	std::signal(SIGINT, on_signal);
	std::fprintf(stderr, "greeter_server: listening on %s\n", addr.c_str());
	while (!stop_requested)
		std::this_thread::sleep_for(std::chrono::milliseconds(50));
	server->Shutdown();
	return 0;
}

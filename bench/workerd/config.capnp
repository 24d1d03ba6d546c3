# workerd serving bench/workerd/hello.js; the bench passes the port with --socket-addr.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "hello", worker = .helloWorker) ],
  sockets = [ (name = "http", address = "127.0.0.1:0", http = (), service = "hello") ],
);

const helloWorker :Workerd.Worker = (
  modules = [ (name = "hello.js", esModule = embed "hello.js") ],
  compatibilityDate = "2024-09-01",
);

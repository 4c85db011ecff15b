// Command backgate-bench is a load benchmark that compares backgate (logged-in
// session, policy over a generated Backstage catalog, both signed headers)
// with a bare httputil.ReverseProxy using the same transport, each in its own
// child process, and prints throughput, p50/p99 latency and peak memory.
package main

/*
 * A test CA and a server certificate it signed (openssl), for Redis servers on a `tls-port` and the
 * instances that check them (NODE_EXTRA_CA_CERTS=caFile).
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

export interface TestTlsFiles {
  /** The test CA's certificate (for NODE_EXTRA_CA_CERTS). */
  readonly caFile: string;
  /** redis.conf directives for a TLS port with the certificate, and TLS between the servers. */
  directives(tlsPort: number): string[][];
  /** Removes the files. */
  remove(): Promise<void>;
}

/** The CA and a certificate for `subjectAltName` (e.g. `IP:127.0.0.1`, `DNS:localhost`), in a fresh temp directory. */
export async function makeTestTlsFiles(subjectAltName: string): Promise<TestTlsFiles> {
  const directory = await mkdtemp(path.join(tmpdir(), "mr-redis-tls-"));
  const file = (name: string): string => path.join(directory, name);
  const openssl = (args: string[]): Promise<unknown> => promisify(execFile)("openssl", args);
  const commonName = subjectAltName.replace(/^[A-Z]+:/, "");
  try {
    await openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", file("ca.key"), "-out", file("ca.crt"), "-days", "2", "-subj", "/CN=registry test CA"]);
    await openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", file("node.key"), "-out", file("node.csr"), "-subj", `/CN=${commonName}`]);
    await writeFile(file("ext"), `subjectAltName=${subjectAltName}\n`);
    await openssl(["x509", "-req", "-in", file("node.csr"), "-CA", file("ca.crt"), "-CAkey", file("ca.key"), "-CAcreateserial", "-out", file("node.crt"), "-days", "2", "-extfile", file("ext")]);
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
  return {
    caFile: file("ca.crt"),
    directives: (tlsPort) => [
      ["tls-port", String(tlsPort)],
      ["tls-cert-file", file("node.crt")],
      ["tls-key-file", file("node.key")],
      ["tls-ca-cert-file", file("ca.crt")],
      ["tls-auth-clients", "no"],
      ["tls-replication", "yes"],
    ],
    remove: () => rm(directory, { recursive: true, force: true }),
  };
}

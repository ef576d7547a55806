/**
 * The parts of the `yaml` package the archive's codec uses (yaml-codec.ts), in a module of their own
 * that the codec loads at its first use, not with the server: the library is ~280 KB of JavaScript
 * that a start, and a server of transient versions, does not need (issue #15, start-up). The
 * production bundle has it as an entry of its own, dist/bundle/yaml-library.js (scripts/bundle.ts),
 * next to the codec's chunk as this file is next to the codec in dist/src/archive/.
 */
export { Document, isMap, isScalar, Pair, parseDocument, Scalar, YAMLMap } from "yaml";

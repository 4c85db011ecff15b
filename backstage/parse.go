package backstage

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	yaml "go.yaml.in/yaml/v3"
)

// MaxDocumentBytes bounds the size of one catalog file.
const MaxDocumentBytes = 8 << 20

const maxDocuments = 100000

// ParseDocuments decodes a (multi-document) catalog-info.yaml. source names the
// file in problems. Each document that fails to decode or validate becomes a
// Problem and is skipped; a syntax error ends the stream (the remainder cannot
// be resynchronised) with a Problem. It never panics on untrusted input.
func ParseDocuments(data []byte, source string) (ents []Entity, probs []Problem) {
	defer func() {
		if r := recover(); r != nil { // defence in depth: the YAML library must not take the process down
			probs = append(probs, Problem{Source: source, Message: fmt.Sprintf("YAML decoder failure: %v", r)})
		}
	}()
	if len(data) > MaxDocumentBytes {
		return nil, []Problem{{Source: source, Message: fmt.Sprintf("file is %d bytes, over the %d byte limit", len(data), MaxDocumentBytes)}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 1; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return ents, probs
		}
		if err != nil {
			probs = append(probs, Problem{Source: source, Message: fmt.Sprintf("document %d: invalid YAML: %v", i, err)})
			return ents, probs
		}
		if n.Kind == 0 { // nothing decoded: treat as end of stream rather than risk looping
			return ents, probs
		}
		if i > maxDocuments {
			probs = append(probs, Problem{Source: source, Message: fmt.Sprintf("more than %d documents; the rest is ignored", maxDocuments)})
			return ents, probs
		}
		if n.Kind == yaml.DocumentNode && (len(n.Content) == 0 || isNullNode(n.Content[0])) {
			continue // empty document, e.g. a trailing "---"
		}
		var e Entity
		if err := n.Decode(&e); err != nil {
			probs = append(probs, Problem{Source: source, Message: fmt.Sprintf("document %d: %v", i, err)})
			continue
		}
		if err := e.validate(); err != nil {
			probs = append(probs, Problem{Source: source, Ref: e.refString(), Message: fmt.Sprintf("document %d: %v", i, err)})
			continue
		}
		ents = append(ents, e)
	}
}

func isNullNode(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// object is a JSON object that keeps its keys in order, so a data action rewritten by export
// reads like the shipped file.
type object struct {
	keys []string
	vals map[string]json.RawMessage
}

func (o *object) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("not a JSON object")
	}
	o.keys, o.vals = nil, map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		k, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if _, dup := o.vals[k]; !dup {
			o.keys = append(o.keys, k)
		}
		o.vals[k] = v
	}
	_, err := dec.Token()
	return err
}

func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(o.vals[k])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// child decodes the object at key.
func (o *object) child(key string) (*object, error) {
	raw, ok := o.vals[key]
	if !ok {
		return nil, fmt.Errorf("no %q", key)
	}
	var c object
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return &c, nil
}

// setChild encodes c back into key.
func (o *object) setChild(key string, c *object) {
	raw, _ := c.MarshalJSON()
	o.vals[key] = raw
}

func (o *object) delete(key string) {
	if _, ok := o.vals[key]; !ok {
		return
	}
	delete(o.vals, key)
	for i, k := range o.keys {
		if k == key {
			o.keys = append(o.keys[:i], o.keys[i+1:]...)
			return
		}
	}
}

// insertAfter adds key after the key after (at the end when after is absent).
func (o *object) insertAfter(after, key string, v any) error {
	raw, err := marshal(v)
	if err != nil {
		return err
	}
	o.delete(key)
	o.vals[key] = raw
	at := len(o.keys)
	for i, k := range o.keys {
		if k == after {
			at = i + 1
		}
	}
	o.keys = append(o.keys[:at], append([]string{key}, o.keys[at:]...)...)
	return nil
}

// marshal encodes without HTML escaping, as the shipped files are written.
func marshal(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

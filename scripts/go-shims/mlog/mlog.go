// Package mlog stands in for monis.app/mlog when the Go module proxy refuses it (the proxy these
// machines reach answers 403 for every version). scripts/build-kube.sh uses it only then, to build the
// azure-workload-identity webhook, which logs through mlog; the webhook's own code is built unchanged.
//
// It is written for this project, not copied: it offers exactly what the webhook calls (New, Logr,
// Setup, Fatal, Enabled, ValidateAndSetLogLevelAndFormatGlobally, LogSpec, the levels, FormatJSON),
// with the same meaning, on logr's funcr writing JSON lines to stderr.
package mlog

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

// LogLevel is a named verbosity; a level enables itself and every level before it.
type LogLevel string

const (
	LevelWarning LogLevel = "warning"
	LevelInfo    LogLevel = "info" // the default (an empty level means info)
	LevelDebug   LogLevel = "debug"
	LevelTrace   LogLevel = "trace"
	LevelAll     LogLevel = "all"
)

// LogFormat is how lines are written.
type LogFormat string

const (
	FormatJSON LogFormat = "json"
	FormatText LogFormat = "text"
)

// LogSpec is the global logging configuration.
type LogSpec struct {
	Level  LogLevel  `json:"level,omitempty"`
	Format LogFormat `json:"format,omitempty"`
}

// logr verbosity of each level: warnings and errors always print; info is V(0).
var verbosity = map[LogLevel]int{LevelWarning: -1, LevelInfo: 0, LevelDebug: 4, LevelTrace: 6, LevelAll: 108}

var current atomic.Int64 // the enabled verbosity
var global atomic.Pointer[logr.Logger]

func init() { install(0) }

func install(v int) {
	current.Store(int64(v))
	sink := funcr.NewJSON(func(obj string) { fmt.Fprintln(os.Stderr, obj) }, funcr.Options{
		LogTimestamp: true,
		Verbosity:    max(v, 0),
	})
	global.Store(&sink)
}

// ValidateAndSetLogLevelAndFormatGlobally applies spec to every logger, past and future.
func ValidateAndSetLogLevelAndFormatGlobally(_ context.Context, spec LogSpec) error {
	level := LogLevel(strings.ToLower(string(spec.Level)))
	if level == "" {
		level = LevelInfo
	}
	v, ok := verbosity[level]
	if !ok {
		return fmt.Errorf("invalid log level %q: want one of warning, info, debug, trace, all", spec.Level)
	}
	if spec.Format != "" && spec.Format != FormatJSON && spec.Format != FormatText {
		return fmt.Errorf("invalid log format %q: want json or text", spec.Format)
	}
	install(v)
	return nil
}

// Enabled reports whether lines of this level are written.
func Enabled(level LogLevel) bool {
	v, ok := verbosity[level]
	return ok && int64(v) <= current.Load()
}

// Logr is the global logger as a logr.Logger (for controller-runtime and client-go).
func Logr() logr.Logger { return *global.Load() }

// Setup returns the function to call before exit (nothing is buffered here).
func Setup() func() { return func() {} }

// Fatal logs err and exits with status 1.
func Fatal(err error, keysAndValues ...any) {
	Logr().Error(err, "fatal error", keysAndValues...)
	os.Exit(1)
}

// Logger is a named logger with fixed key/value pairs; it always writes through the global settings.
type Logger struct {
	names  []string
	values []any
}

// New returns the root logger.
func New() Logger { return Logger{} }

func (l Logger) sink() logr.Logger {
	sink := Logr()
	for _, name := range l.names {
		sink = sink.WithName(name)
	}
	return sink.WithValues(l.values...)
}

// WithName adds a name segment.
func (l Logger) WithName(name string) Logger {
	return Logger{names: append(append([]string{}, l.names...), name), values: l.values}
}

// WithValues adds key/value pairs to every line.
func (l Logger) WithValues(keysAndValues ...any) Logger {
	return Logger{names: l.names, values: append(append([]any{}, l.values...), keysAndValues...)}
}

func (l Logger) Error(msg string, err error, keysAndValues ...any) {
	l.sink().Error(err, msg, keysAndValues...)
}
func (l Logger) Warning(msg string, keysAndValues ...any) {
	l.sink().Info(msg, append([]any{"level", "warning"}, keysAndValues...)...)
}
func (l Logger) Info(msg string, keysAndValues ...any) {
	if Enabled(LevelInfo) {
		l.sink().Info(msg, keysAndValues...)
	}
}
func (l Logger) Debug(msg string, keysAndValues ...any) {
	l.sink().V(verbosity[LevelDebug]).Info(msg, keysAndValues...)
}
func (l Logger) Trace(msg string, keysAndValues ...any) {
	l.sink().V(verbosity[LevelTrace]).Info(msg, keysAndValues...)
}

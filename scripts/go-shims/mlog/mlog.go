// Package mlog stands in for monis.app/mlog when the Go module proxy refuses it (the proxy these
// machines reach answers 403 for every version). scripts/build-kube.sh uses it only then, to build the
// azure-workload-identity webhook, which logs through mlog; the webhook's own code is built unchanged.
//
// It is written for this project, not copied: it offers exactly what the webhook and the azwi CLI call
// (New, Logr, Setup, Fatal, Enabled, ValidateAndSetLogLevelAndFormatGlobally, LogSpec, the levels, the
// formats, and the package-level Info/Debug/Trace/Warning/Error/WithName/WithValues), with the same
// meaning, on logr's funcr writing to stderr: JSON lines, or logr's text form for FormatText and FormatCLI.
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
	FormatCLI  LogFormat = "cli" // for command-line tools (azwi): plain lines
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

func init() { install(0, FormatJSON) }

func install(v int, format LogFormat) {
	current.Store(int64(v))
	options := funcr.Options{LogTimestamp: format != FormatCLI, Verbosity: max(v, 0)}
	write := func(prefix, args string) {
		if prefix != "" {
			args = prefix + ": " + args
		}
		fmt.Fprintln(os.Stderr, args)
	}
	sink := funcr.New(write, options)
	if format == FormatJSON || format == "" {
		sink = funcr.NewJSON(func(obj string) { fmt.Fprintln(os.Stderr, obj) }, options)
	}
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
	if spec.Format != "" && spec.Format != FormatJSON && spec.Format != FormatText && spec.Format != FormatCLI {
		return fmt.Errorf("invalid log format %q: want json, text or cli", spec.Format)
	}
	install(v, spec.Format)
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

// The root logger's methods at package level, as the CLI tools call them.

// WithName is New().WithName(name).
func WithName(name string) Logger { return New().WithName(name) }

// WithValues is New().WithValues(keysAndValues...).
func WithValues(keysAndValues ...any) Logger { return New().WithValues(keysAndValues...) }

// Error logs err with msg.
func Error(msg string, err error, keysAndValues ...any) { New().Error(msg, err, keysAndValues...) }

// Warning logs at the warning level (always written).
func Warning(msg string, keysAndValues ...any) { New().Warning(msg, keysAndValues...) }

// Info logs at the info level.
func Info(msg string, keysAndValues ...any) { New().Info(msg, keysAndValues...) }

// Debug logs at the debug level.
func Debug(msg string, keysAndValues ...any) { New().Debug(msg, keysAndValues...) }

// Trace logs at the trace level.
func Trace(msg string, keysAndValues ...any) { New().Trace(msg, keysAndValues...) }

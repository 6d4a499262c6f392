// Package envflag gives every command-line flag an environment twin:
// --database-url is also RIDESTREAM_DATABASE_URL. The command line wins over
// the environment; --help names the twin of each flag.
package envflag

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// Prefix of every environment twin.
const Prefix = "RIDESTREAM_"

// EnvName is the environment twin of a flag name.
func EnvName(flagName string) string {
	return Prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse applies environment twins to fs, then parses args over them. An
// environment value that does not parse is an error naming both.
func Parse(fs *flag.FlagSet, args []string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := EnvName(f.Name)
		f.Usage += " [$" + env + "]"
		if v, ok := os.LookupEnv(env); ok && err == nil {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("--%s from $%s %q: %w", f.Name, env, v, serr)
			}
		}
	})
	if err != nil {
		return err
	}
	return named(fs.Parse(args))
}

// badValue is how package flag reports a value its flag refuses.
var badValue = regexp.MustCompile(`^invalid value ("(?:[^"\\]|\\.)*") for flag -([\w.-]+): (.*)$`)

// named rewrites package flag's "invalid value "x" for flag -name: why"
// into "--name "x": why", the way every other configuration error here
// names its flag.
func named(err error) error {
	if err == nil {
		return nil
	}
	if m := badValue.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("--%s %s: %s", m[2], m[1], m[3])
	}
	return err
}

// OnCommandLine reports whether args set the flag name explicitly (as -name,
// --name, -name=v or --name=v), as opposed to its environment twin.
func OnCommandLine(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if !strings.HasPrefix(a, "-") {
			continue // a value, such as --prefix kafka-sasl-password
		}
		a = strings.TrimLeft(a, "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// Command hello is a stand-in binary for testing BuildBinaries.
package main

import (
	"fmt"
	"os"
)

func main() {
	host, _ := os.Hostname()
	fmt.Printf("hello %s %d\n", host, len(os.Args))
}

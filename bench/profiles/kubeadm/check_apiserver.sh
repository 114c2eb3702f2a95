#!/bin/sh
errorExit() {
    echo "*** $*" 1>&2
    exit 1
}
curl -sfk --max-time 2 http://localhost:80/ -o /dev/null || errorExit "Error GET http://localhost:80/"

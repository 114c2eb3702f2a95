module halb/engine/command

go 1.26

tool github.com/pulumi/pulumi-command/provider/cmd/pulumi-resource-command

// pulumi-command's provider module has no version tags: this is the commit of its v1.2.1 tag.
require github.com/pulumi/pulumi-command/provider v0.0.0-20260303235922-7f3eb6f3b77c

// halb-vcsim: the lab's simulated vCenter, over govmomi's simulator package.
//
// It serves the vSphere SOAP API and the REST (vapi) endpoints that pulumi-vsphere uses, over
// TLS, on one address, with one user whose password is read from a file. Its inventory is a
// small site (see inventory below). Where govmomi's simulator lacks a vCenter behaviour the
// provider relies on, this program adds it; each addition is marked ADDITION and listed in the
// README's lab section:
//
//  1. Each cluster is also registered under a ComputeResource-typed reference. vCenter resolves
//     a reference by its value; the simulator by type and value, and terraform-provider-vsphere
//     reads a cluster through a ComputeResource-typed reference.
//  2. New VMs as vCenter makes them: a random BIOS and instance UUID (the simulator derives them
//     from the VM's path, so a VM cloned again under the same name would keep its old UUID, the
//     provider's id), and a swap placement that reads "inherit" (the simulator leaves it empty,
//     and the provider would then plan an update of every VM on each preview).
//  3. An environment browser's config option carries its hardware version
//     (hardwareOptions.hwVersion), as vCenter's does: without it the provider takes the VM's
//     version for outdated and tries to upgrade a running VM on every update (InvalidPowerState).
//  4. Guest networking reported after customization, as VMware Tools does: each customized
//     address with its prefix length, and a default route via the customized gateway
//     (guest.net and guest.ipStack, with the customized DNS servers and domain), so the provider's
//     wait for a routable guest network ends.
//
// Usage: halb-vcsim -listen 198.18.0.1:443 -user administrator@vsphere.local -password-file F -ready-file R
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	_ "github.com/vmware/govmomi/lookup/simulator"
	_ "github.com/vmware/govmomi/pbm/simulator"
	_ "github.com/vmware/govmomi/sts/simulator"
	_ "github.com/vmware/govmomi/vapi/simulator"
)

// The site. The datastore keeps the simulator's name: the simulator cannot rename a datastore.
const (
	datacenter = "lab-dc"
	cluster    = "lab-cluster"
	portgroup  = "lab-lan"
	vmFolder   = "halb"
	datastore  = "LocalDS_0"
)

// Templates: a Linux VM with one disk and one NIC, a rebuilt one (another UUID), and one with no NIC.
var templates = []struct {
	name string
	nic  bool
}{
	{"debian-12-template", true},
	{"debian-12-template-v2", true},
	{"debian-12-template-nonic", false},
}

// ADDITION 1: each cluster, also under a ComputeResource-typed reference.
type computeResourceAlias struct {
	*simulator.ClusterComputeResource
}

func (a *computeResourceAlias) Reference() types.ManagedObjectReference {
	ref := a.ClusterComputeResource.Self
	ref.Type = "ComputeResource"
	return ref
}

// ADDITION 2: a registry handler that sees every new VM before anyone can read it.
type vmDefaults struct{}

func (vmDefaults) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "HalbVmDefaults", Value: "halb-vm-defaults"}
}

func (vmDefaults) PutObject(_ *simulator.Context, obj mo.Reference) {
	vm, ok := obj.(*simulator.VirtualMachine)
	if !ok || vm.Config == nil {
		return
	}
	if vm.Config.SwapPlacement == "" {
		vm.Config.SwapPlacement = string(types.VirtualMachineConfigInfoSwapPlacementTypeInherit)
	}
	vm.Config.Uuid, vm.Config.InstanceUuid = uuid.NewString(), uuid.NewString()
	vm.Summary.Config.Uuid, vm.Summary.Config.InstanceUuid = vm.Config.Uuid, vm.Config.InstanceUuid
}

func (vmDefaults) UpdateObject(*simulator.Context, mo.Reference, []types.PropertyChange) {}
func (vmDefaults) RemoveObject(*simulator.Context, types.ManagedObjectReference)         {}

// ADDITION 3.
func describeHardwareVersion(model *simulator.Model) {
	version, err := strconv.Atoi(strings.TrimPrefix(esx.HardwareVersion, "vmx-"))
	check(err, "parse "+esx.HardwareVersion)
	for _, obj := range model.Map().AllReference("EnvironmentBrowser") {
		b := obj.(*simulator.EnvironmentBrowser)
		b.QueryConfigOptionResponse.Returnval = &types.VirtualMachineConfigOption{
			Version:         esx.HardwareVersion,
			DefaultDevice:   esx.VirtualDevice,
			HardwareOptions: types.VirtualHardwareOption{HwVersion: int32(version)},
		}
	}
}

// ADDITION 4: the customization each VM was given, read from its CustomizeVM_Task request.
type nicSetting struct {
	Address    string   `xml:"adapter>ip>ipAddress"`
	SubnetMask string   `xml:"adapter>subnetMask"`
	Gateway    []string `xml:"adapter>gateway"`
}

type customizeRequest struct {
	This       string       `xml:"Body>CustomizeVM_Task>_this"`
	Nics       []nicSetting `xml:"Body>CustomizeVM_Task>spec>nicSettingMap"`
	DNSServers []string     `xml:"Body>CustomizeVM_Task>spec>globalIPSettings>dnsServerList"`
	DNSSuffix  []string     `xml:"Body>CustomizeVM_Task>spec>globalIPSettings>dnsSuffixList"`
	Domain     string       `xml:"Body>CustomizeVM_Task>spec>identity>domain"`
	HostName   string       `xml:"Body>CustomizeVM_Task>spec>identity>hostName>name"`
}

type guestReporter struct {
	mu      sync.Mutex
	pending map[string]*guest // VM moref value -> its customization, until reported
}

type guest struct {
	spec    customizeRequest
	reports int       // how many times guest.net was published (the route goes with the first)
	next    time.Time // when to publish it again
}

// wrap records CustomizeVM_Task specs on their way to the simulator.
func (g *guestReporter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/sdk") {
			body, err := io.ReadAll(r.Body)
			if err == nil && bytes.Contains(body, []byte("CustomizeVM_Task")) {
				var req customizeRequest
				if xml.Unmarshal(body, &req) == nil && req.This != "" {
					g.mu.Lock()
					g.pending[req.This] = &guest{spec: req}
					g.mu.Unlock()
				}
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

// report publishes, for each VM whose customization has run, the guest network as VMware Tools
// reports it once the guest is up: the default route and the resolver (guest.ipStack), then the
// addresses with their prefix (guest.net). Like Tools' periodic guest-info refresh, guest.net is
// published again every second while the VM runs: the provider's waiter reads both properties in
// one answer, addresses first, and needs to see the addresses again once it knows the gateway.
func (g *guestReporter) report(model *simulator.Model) {
	ctx := model.Service.Context
	for range time.Tick(200 * time.Millisecond) {
		g.mu.Lock()
		for value, gi := range g.pending {
			obj := model.Map().Get(types.ManagedObjectReference{Type: "VirtualMachine", Value: value})
			vm, ok := obj.(*simulator.VirtualMachine)
			if !ok {
				delete(g.pending, value)
				continue
			}
			if time.Now().Before(gi.next) {
				continue
			}
			ctx.WithLock(vm, func() {
				if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn ||
					vm.Config.Tools.PendingCustomization != "" || len(vm.Guest.Net) < len(gi.spec.Nics) {
					return
				}
				if gi.reports == 0 {
					var routes []types.NetIpRouteConfigInfoIpRoute
					for i, nic := range gi.spec.Nics {
						for _, gw := range nic.Gateway {
							routes = append(routes, types.NetIpRouteConfigInfoIpRoute{
								Network: "0.0.0.0", PrefixLength: 0,
								Gateway: types.NetIpRouteConfigInfoGateway{IpAddress: gw, Device: fmt.Sprint(i)},
							})
						}
					}
					dns := &types.NetDnsConfigInfo{
						HostName: gi.spec.HostName, DomainName: gi.spec.Domain,
						IpAddress: gi.spec.DNSServers, SearchDomain: gi.spec.DNSSuffix,
					}
					stack := []types.GuestStackInfo{{
						IpRouteConfig: &types.NetIpRouteConfigInfo{IpRoute: routes}, DnsConfig: dns,
					}}
					ctx.Update(vm, []types.PropertyChange{{Name: "guest.ipStack", Val: stack}})
				}
				for i, nic := range gi.spec.Nics {
					if nic.Address == "" {
						continue
					}
					ones, _ := net.IPMask(net.ParseIP(nic.SubnetMask).To4()).Size()
					vm.Guest.Net[i].IpAddress = []string{nic.Address}
					vm.Guest.Net[i].IpConfig = &types.NetIpConfigInfo{IpAddress: []types.NetIpConfigInfoIpAddress{{
						IpAddress: nic.Address, PrefixLength: int32(ones), State: "preferred",
					}}}
				}
				ctx.Update(vm, []types.PropertyChange{{Name: "guest.net", Val: vm.Guest.Net}})
				gi.next = time.Now().Add(time.Second)
				gi.reports++
			})
		}
		g.mu.Unlock()
	}
}

func check(err error, what string) {
	if err != nil {
		log.Fatalf("halb-vcsim: %s: %v", what, err)
	}
}

// inventory renames the model's objects to the site's names and adds the VM folder and templates.
func inventory(ctx context.Context, c *govmomi.Client) {
	finder := find.NewFinder(c.Client)
	dc, err := finder.Datacenter(ctx, "DC0")
	check(err, "find DC0")
	finder.SetDatacenter(dc)
	cl, err := finder.ClusterComputeResource(ctx, "DC0_C0")
	check(err, "find DC0_C0")
	pg, err := finder.Network(ctx, "DC0_DVPG0")
	check(err, "find DC0_DVPG0")
	ds, err := finder.Datastore(ctx, datastore)
	check(err, "find "+datastore)
	pool, err := cl.ResourcePool(ctx)
	check(err, "cluster resource pool")
	folders, err := dc.Folders(ctx)
	check(err, "datacenter folders")

	for ref, name := range map[types.ManagedObjectReference]string{
		cl.Reference(): cluster, pg.Reference(): portgroup, dc.Reference(): datacenter,
	} {
		task, err := object.NewCommon(c.Client, ref).Rename(ctx, name)
		check(err, "rename "+name)
		check(task.Wait(ctx), "rename "+name)
	}
	drs := &types.ClusterConfigSpecEx{DrsConfig: &types.ClusterDrsConfigInfo{
		Enabled: types.NewBool(true), DefaultVmBehavior: types.DrsBehaviorFullyAutomated,
	}}
	task, err := cl.Reconfigure(ctx, drs, true)
	check(err, "enable DRS")
	check(task.Wait(ctx), "enable DRS")
	_, err = folders.VmFolder.CreateFolder(ctx, vmFolder)
	check(err, "create folder "+vmFolder)
	backing, err := pg.EthernetCardBackingInfo(ctx)
	check(err, "port group backing")

	for _, t := range templates {
		var devices object.VirtualDeviceList
		scsi, err := devices.CreateSCSIController("pvscsi")
		check(err, "scsi controller")
		devices = append(devices, scsi)
		disk := devices.CreateDisk(scsi.(types.BaseVirtualController), ds.Reference(), "")
		disk.CapacityInKB = 10 * 1024 * 1024
		disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo).ThinProvisioned = types.NewBool(true)
		devices = append(devices, disk)
		if t.nic {
			nic, err := devices.CreateEthernetCard("vmxnet3", backing)
			check(err, "nic")
			devices = append(devices, nic)
		}
		changes, err := devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
		check(err, "device spec")
		for _, ch := range changes {
			if _, ok := ch.GetVirtualDeviceConfigSpec().Device.(*types.VirtualDisk); ok {
				ch.GetVirtualDeviceConfigSpec().FileOperation = types.VirtualDeviceConfigSpecFileOperationCreate
			}
		}
		spec := types.VirtualMachineConfigSpec{
			Name: t.name, GuestId: "debian12_64Guest", NumCPUs: 2, MemoryMB: 2048, Firmware: "efi",
			Files:        &types.VirtualMachineFileInfo{VmPathName: fmt.Sprintf("[%s]", datastore)},
			DeviceChange: changes,
		}
		task, err := folders.VmFolder.CreateVM(ctx, spec, pool, nil)
		check(err, "create "+t.name)
		info, err := task.WaitForResult(ctx)
		check(err, "create "+t.name)
		vm := object.NewVirtualMachine(c.Client, info.Result.(types.ManagedObjectReference))
		check(vm.MarkAsTemplate(ctx), "mark "+t.name+" as template")
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8989", "address:port to serve on (loopback or a lab address)")
	user := flag.String("user", "administrator@vsphere.local", "the one user")
	passwordFile := flag.String("password-file", "", "file holding the user's password (required)")
	ready := flag.String("ready-file", "", "written once the inventory is ready: the server's URL, without credentials")
	flag.Parse()
	secret, err := os.ReadFile(*passwordFile)
	check(err, "read -password-file")
	password := strings.TrimRight(string(secret), "\n")

	model := simulator.VPX()
	model.Host = 0 // every host is in the DRS cluster
	model.ClusterHost = 3
	model.Machine = 0 // the templates below are the only VMs
	check(model.Create(), "create the model")
	defer model.Remove()
	for _, obj := range model.Map().All("ClusterComputeResource") {
		model.Map().Put(&computeResourceAlias{obj.(*simulator.ClusterComputeResource)})
	}

	model.Map().AddHandler(vmDefaults{})
	describeHardwareVersion(model)

	model.Service.TLS = new(tls.Config)
	model.Service.RegisterEndpoints = true
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, password)}
	server := model.Service.NewServer()
	defer server.Close()
	guests := &guestReporter{pending: map[string]*guest{}}
	server.Config.Handler = guests.wrap(server.Config.Handler)
	go guests.report(model)

	ctx := context.Background()
	u := *server.URL
	u.User = url.UserPassword(*user, password)
	client, err := govmomi.NewClient(ctx, &u, true)
	check(err, "log in to itself")
	inventory(ctx, client)
	check(client.Logout(ctx), "log out")

	if *ready != "" {
		u.User = nil
		check(os.WriteFile(*ready, []byte(u.String()+"\n"), 0o644), "write -ready-file")
	}
	log.Printf("halb-vcsim: serving %s", server.URL.Host)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}

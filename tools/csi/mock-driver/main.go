// Command csi-mock-driver serves upstream's e2e mock CSI driver
// (k8s.io/kubernetes/test/e2e/storage/drivers/csi-test) on a Unix socket and,
// standing in for the node-driver-registrar side-car, the kubelet's plugin
// registration service (pluginregistration v1) on a second one. Every gRPC
// call on either socket is logged as one JSON line:
//
//	{"time":…,"socket":"csi","method":"NodeStageVolume","fullMethod":"/csi.v1.Node/NodeStageVolume","code":"OK","request":{…},"response":{…}}
//
// The registration socket appears only once the CSI socket is serving; both
// are removed on SIGTERM or SIGINT. Built by tools/csi/build.sh.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	regv1 "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
	"k8s.io/kubernetes/test/e2e/storage/drivers/csi-test/driver"
	"k8s.io/kubernetes/test/e2e/storage/drivers/csi-test/mock/service"
)

// mock adapts upstream's single-node mock, whose node ID is its configured
// driver name (NodeGetInfo, and ControllerPublishVolume refuses other nodes):
// it is built with the node ID as that name, and GetPluginInfo reports the real
// one. It can also stop advertising STAGE_UNSTAGE_VOLUME.
type mock struct {
	service.Service
	name    string
	stage   bool
	dataDir string
}

// NodePublishVolume, with --data-dir, turns the target directory upstream's
// mock creates into a symbolic link to <data-dir>/<volume ID>, so that what a
// pod writes outlives the publication (upstream's mock keeps no data).
func (m mock) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	resp, err := m.Service.NodePublishVolume(ctx, req)
	if err != nil || m.dataDir == "" {
		return resp, err
	}
	data := filepath.Join(m.dataDir, filepath.Base(req.GetVolumeId()))
	if err := os.MkdirAll(data, 0o777); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	target := req.GetTargetPath()
	if fi, err := os.Lstat(target); err == nil && fi.IsDir() {
		if err := os.Remove(target); err != nil { // only an empty directory
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	if err := os.Symlink(data, target); err != nil && !os.IsExist(err) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return resp, nil
}

// NodeUnpublishVolume removes the link before upstream's mock removes the
// target (so the data stays).
func (m mock) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	if m.dataDir != "" {
		if fi, err := os.Lstat(req.GetTargetPath()); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			if err := os.Remove(req.GetTargetPath()); err != nil {
				return nil, status.Error(codes.Internal, err.Error())
			}
		}
	}
	return m.Service.NodeUnpublishVolume(ctx, req)
}

func (m mock) GetPluginInfo(ctx context.Context, req *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	resp, err := m.Service.GetPluginInfo(ctx, req)
	if resp != nil {
		resp.Name = m.name
	}
	return resp, err
}

func (m mock) NodeGetCapabilities(ctx context.Context, req *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	resp, err := m.Service.NodeGetCapabilities(ctx, req)
	if resp != nil && !m.stage {
		caps := resp.Capabilities[:0]
		for _, c := range resp.Capabilities {
			if c.GetRpc().GetType() != csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME {
				caps = append(caps, c)
			}
		}
		resp.Capabilities = caps
	}
	return resp, err
}

type registration struct {
	regv1.UnimplementedRegistrationServer
	name, endpoint string
}

func (r registration) GetInfo(context.Context, *regv1.InfoRequest) (*regv1.PluginInfo, error) {
	return &regv1.PluginInfo{Type: regv1.CSIPlugin, Name: r.name, Endpoint: r.endpoint, SupportedVersions: []string{"1.0.0"}}, nil
}

// NotifyRegistrationStatus only acknowledges: the call log records the status.
func (r registration) NotifyRegistrationStatus(context.Context, *regv1.RegistrationStatus) (*regv1.RegistrationStatusResponse, error) {
	return &regv1.RegistrationStatusResponse{}, nil
}

// callLog writes one JSON line per call; the mutex keeps lines whole.
type callLog struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *callLog) interceptor(socket string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		line := struct {
			Time       string          `json:"time"`
			Socket     string          `json:"socket"`
			Method     string          `json:"method"`
			FullMethod string          `json:"fullMethod"`
			Code       string          `json:"code"`
			Error      string          `json:"error,omitempty"`
			Request    json.RawMessage `json:"request,omitempty"`
			Response   json.RawMessage `json:"response,omitempty"`
		}{time.Now().UTC().Format(time.RFC3339Nano), socket, path.Base(info.FullMethod), info.FullMethod,
			status.Code(err).String(), "", asJSON(req), nil}
		if err != nil {
			line.Error = status.Convert(err).Message()
		} else {
			line.Response = asJSON(resp)
		}
		b, _ := json.Marshal(line)
		l.mu.Lock()
		defer l.mu.Unlock()
		_, _ = l.w.Write(append(b, '\n'))
		return resp, err
	}
}

// asJSON also takes the CSI spec's messages, which k8s.io/kubernetes pins at a
// release generated for the legacy protobuf API.
func asJSON(m any) json.RawMessage {
	var pm proto.Message
	switch m := m.(type) {
	case proto.Message:
		pm = m
	case protoadapt.MessageV1:
		pm = protoadapt.MessageV2Of(m)
	default:
		return nil
	}
	b, err := protojson.Marshal(pm)
	if err != nil {
		return nil
	}
	return b
}

// listen replaces a stale socket left by a killed predecessor.
func listen(sock string) net.Listener {
	if err := os.MkdirAll(filepath.Dir(sock), 0o750); err != nil {
		log.Fatal(err)
	}
	if err := os.Remove(sock); err != nil && !os.IsNotExist(err) {
		log.Fatal(err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		log.Fatal(err)
	}
	return l
}

func main() {
	name := flag.String("driver-name", service.Name, "CSI driver name (GetPluginInfo, registration)")
	csiSock := flag.String("csi-address", "", "path of the CSI socket to serve (required), e.g. <kubelet root>/plugins/<driver>/csi.sock")
	regSock := flag.String("registration-address", "", "path of the registration socket to serve, e.g. <kubelet root>/plugins_registry/<driver>-reg.sock (empty: none)")
	nodeID := flag.String("node-id", "", "node ID in NodeGetInfo, the only one ControllerPublishVolume accepts (default: the host name)")
	disableAttach := flag.Bool("disable-attach", false, "no ControllerPublishVolume needed (the CSIDriver has attachRequired: false)")
	stage := flag.Bool("stage-unstage", true, "advertise STAGE_UNSTAGE_VOLUME in NodeGetCapabilities")
	permissive := flag.Bool("permissive-target-path", false, "upstream's PermissiveTargetPath (in v1.36.3 an existing target path is accepted either way)")
	attachLimit := flag.Int64("attach-limit", 0, "max_volumes_per_node in NodeGetInfo (0: none)")
	topology := flag.Bool("enable-topology", false, "advertise the topology key "+service.TopologyKey)
	dataDir := flag.String("data-dir", "", "keep each volume's contents in <data-dir>/<volume ID>: NodePublishVolume links the target there (empty: upstream's plain directory)")
	logFile := flag.String("log-file", "", "append the call log to this file (default: stderr)")
	flag.Parse()
	if *csiSock == "" {
		log.Fatal("--csi-address is required")
	}
	// The kubelet dials the endpoint from GetInfo as given.
	if abs, err := filepath.Abs(*csiSock); err == nil {
		*csiSock = abs
	}
	if *nodeID == "" {
		*nodeID, _ = os.Hostname()
	}
	calls := &callLog{w: os.Stderr}
	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		calls.w = f
	}

	m := mock{service.New(service.Config{DriverName: *nodeID, DisableAttach: *disableAttach, AttachLimit: *attachLimit,
		PermissiveTargetPath: *permissive, EnableTopology: *topology}), *name, *stage, *dataDir}
	drv := driver.NewCSIDriver(&driver.CSIDriverServers{Controller: m, Identity: m, Node: m})
	if err := drv.Start(listen(*csiSock), calls.interceptor("csi")); err != nil {
		log.Fatal(err)
	}
	log.Printf("CSI driver %s (node %s) serving on %s", *name, *nodeID, *csiSock)
	var reg *grpc.Server
	if *regSock != "" {
		reg = grpc.NewServer(grpc.UnaryInterceptor(calls.interceptor("registration")))
		regv1.RegisterRegistrationServer(reg, registration{name: *name, endpoint: *csiSock})
		l := listen(*regSock)
		go func() { _ = reg.Serve(l) }()
		log.Printf("registration serving on %s", *regSock)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	if reg != nil { // deregister first: the kubelet sees the socket go
		reg.Stop()
		_ = os.Remove(*regSock)
	}
	drv.Stop()
	_ = os.Remove(*csiSock)
	log.Print("stopped, sockets removed")
}

package api

import (
	"context"

	"github.com/tokenservice/tokenservice/pkg/calllog"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/users"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

// UserServer implements pb.UserServiceServer.
type UserServer struct {
	pb.UnimplementedUserServiceServer
	deps Deps
}

var _ pb.UserServiceServer = (*UserServer)(nil)

// NewUserServer returns a UserServer.
func NewUserServer(deps Deps) *UserServer { return &UserServer{deps: deps} }

// CreateUser implements pb.UserServiceServer.
func (s *UserServer) CreateUser(ctx context.Context, req *pb.CreateUserRequest) (*pb.CreateUserResponse, error) {
	u, err := s.deps.Users.Create(ctx, domain.PrincipalFromContext(ctx), createUserInput(req))
	if err != nil {
		return nil, err
	}
	return &pb.CreateUserResponse{User: userToProto(u)}, nil
}

// GetUser implements pb.UserServiceServer.
func (s *UserServer) GetUser(ctx context.Context, req *pb.GetUserRequest) (*pb.GetUserResponse, error) {
	caller := domain.PrincipalFromContext(ctx)
	u, err := s.deps.Users.Get(ctx, caller, userID(caller, req.GetUserId()))
	if err != nil {
		return nil, err
	}
	return &pb.GetUserResponse{User: userToProto(u)}, nil
}

// ListUsers implements pb.UserServiceServer.
func (s *UserServer) ListUsers(ctx context.Context, req *pb.ListUsersRequest) (*pb.ListUsersResponse, error) {
	list, next, err := s.deps.Users.List(ctx, domain.PrincipalFromContext(ctx), listUsersInput(req))
	if err != nil {
		return nil, err
	}
	resp := &pb.ListUsersResponse{Users: make([]*pb.User, len(list)), NextPageToken: next}
	for i, u := range list {
		resp.Users[i] = userToProto(u)
	}
	return resp, nil
}

// DeleteUser implements pb.UserServiceServer.
func (s *UserServer) DeleteUser(ctx context.Context, req *pb.DeleteUserRequest) (*pb.DeleteUserResponse, error) {
	caller := domain.PrincipalFromContext(ctx)
	if err := s.deps.Users.Delete(ctx, caller, userID(caller, req.GetUserId())); err != nil {
		return nil, err
	}
	return &pb.DeleteUserResponse{}, nil
}

// ChangePassword implements pb.UserServiceServer.
func (s *UserServer) ChangePassword(ctx context.Context, req *pb.ChangePasswordRequest) (*pb.ChangePasswordResponse, error) {
	caller := domain.PrincipalFromContext(ctx)
	id := userID(caller, req.GetUserId())
	if req.GetOldPassword() != "" && id == caller.User.ID {
		calllog.SetUsername(ctx, caller.User.Username) // the old password is checked for one's own only
	}
	err := s.deps.Users.ChangePassword(ctx, caller, users.PasswordChange{
		UserID:      id,
		OldPassword: req.GetOldPassword(),
		NewPassword: req.GetNewPassword(),
		ClientAddr:  calllog.ClientAddr(ctx),
	})
	if err != nil {
		return nil, err
	}
	return &pb.ChangePasswordResponse{}, nil
}

// me is the user_id alias of the caller (AIP-style, as in users/me).
const me = "me"

// userID resolves the "me" alias.
func userID(caller *domain.Principal, id string) string {
	if id == me {
		return caller.User.ID
	}
	return id
}
